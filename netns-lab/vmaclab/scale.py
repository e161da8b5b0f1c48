"""``vmac-lab bench scale``: two routers with N VRIDs each (one instance per VRID, vMAC on).

Per implementation, over a measurement window after every instance has converged (r1 master of all,
r2 backup of all):

* CPU time of the daemon processes (``/proc/PID/stat`` utime+stime; vmacd: daemon + guardian,
  keepalived: parent + VRRP child) on the master and on the backup;
* advertisements sent by the master and delivered to the backup, counted by nftables counters in the
  LAN's bridge namespace (``prerouting`` on the master's port, ``forward`` out of the backup's port):
  exact, and no capture process competing for the two cores;
* -> CPU µs per advertisement sent (master) and per advertisement received (backup);
* RSS (``VmRSS`` of the daemon processes) on both routers;
* spurious transitions during the window: state changes the daemons report (vmacd: control-socket
  history; keepalived: notify_fifo lines), plus advertisements the backup sent (must both be 0).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from .impls.keepalived import Keepalived
from .impls.vmacd import Vmacd
from .lab import Lab
from .topology import resolve
from .util import log, parse_duration_ms, run, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


def vip_for(vrid: int) -> str:
    """A /32 VIP per VRID from documentation ranges (198.51.100.VRID; 255 -> 203.0.113.1)."""
    return f"198.51.100.{vrid}" if vrid <= 254 else "203.0.113.1"


def _vrids(cfg, n: int) -> list[int]:
    return list(range(cfg.vrid, cfg.vrid + n))


class ScaleVmacd(Vmacd):
    """vmacd with ``n_vrids`` instances (VRIDs vrid..vrid+n-1), one /32 VIP each."""

    n_vrids = 1

    def render(self) -> str:
        c = self.cfg
        assert c is not None and self.lab is not None
        iface = self.lab.ifname(c.node, c.lan)
        lines = ["[global]", f'node = "{c.node}"', f'control_socket = "{self.socket_path}"',
                 'metrics_listen = ""', f'notify = "{self.dir / "notify.sh"}"']
        for v in _vrids(c, self.n_vrids):
            lines += ["", "[[instance]]", f'name = "v{v}"', f'interface = "{iface}"', f"vrid = {v}",
                      f"version = {c.version}", f"priority = {c.priority}",
                      f'advert_interval = "{c.advert_ms}ms"', f'virtual_ips = ["{vip_for(v)}/32"]',
                      "vmac = true", "accept = true", "garp_repeat = 1"]
        return "\n".join(lines) + "\n"

    def states(self) -> dict[str, int]:
        """{state: count} over every instance (daemon's status)."""
        reply = self.status() or {}
        out: dict[str, int] = {}
        for inst in reply.get("instances", []):
            out[inst["state"]] = out.get(inst["state"], 0) + 1
        return out

    def transitions(self) -> int | None:
        """Transitions the daemon has recorded so far (control-socket history)."""
        reply = self.control({"cmd": "history"})
        return None if reply is None else len(reply.get("history", []))


class ScaleKeepalived(Keepalived):
    """keepalived with ``n_vrids`` vrrp_instances (use_vmac), states counted per instance."""

    n_vrids = 1

    def __init__(self) -> None:
        super().__init__()
        self.inst_state: dict[str, str] = {}
        self.n_transitions = 0

    def render(self) -> str:
        c = self.cfg
        assert c is not None and self.lab is not None
        iface = self.lab.ifname(c.node, c.lan)
        lines = ["global_defs {", f"  router_id {c.node}", f"  notify_fifo {self.dir / 'notify.fifo'}",
                 "  script_user root", "  enable_script_security", f"  vrrp_version {c.version}",
                 "  vrrp_garp_master_repeat 1", "}"]
        for v in _vrids(c, self.n_vrids):
            lines += [f"vrrp_instance VI_{v} {{", "  state BACKUP", f"  interface {iface}",
                      f"  virtual_router_id {v}", f"  priority {c.priority}",
                      f"  advert_int {c.advert_ms / 1000:g}", f"  version {c.version}",
                      f"  use_vmac vrrp4.{v}", "  virtual_ipaddress {", f"    {vip_for(v)}/32", "  }", "}"]
        return "\n".join(lines) + "\n"

    def _parse(self, line: str) -> None:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "INSTANCE":
            self.inst_state[parts[1].strip('"')] = parts[2].lower()
            self.n_transitions += 1
        super()._parse(line)

    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for st in self.inst_state.values():
            out[st] = out.get(st, 0) + 1
        return out

    def transitions(self) -> int | None:
        return self.n_transitions


IMPLS = {"vmacd": ScaleVmacd, "keepalived": ScaleKeepalived}


# -- measurement helpers --------------------------------------------------------------------------
def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (clock ticks) of *pids* (all threads of each)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kb(pids: list[int]) -> dict[int, int]:
    """VmRSS (kB) per pid."""
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out


def install_counters(lab: Lab, lan: str, nodes: list[str]) -> str:
    """nftables counters of VRRP frames per router port in *lan*'s bridge namespace."""
    tbl = f"{lab.prefix}count"
    pre = "".join(f'    iifname "{lab.bridge_port(n, lan)}" ip protocol 112 counter comment "{n}-sent"\n'
                  for n in nodes)
    fwd = "".join(f'    oifname "{lab.bridge_port(n, lan)}" ip protocol 112 counter comment "{n}-recv"\n'
                  for n in nodes)
    text = (f"table bridge {tbl} {{\n  chain vsent {{\n    type filter hook prerouting priority -300;"
            f" policy accept;\n{pre}  }}\n  chain vrecv {{\n    type filter hook forward priority -300;"
            f" policy accept;\n{fwd}  }}\n}}\n")
    run(["ip", "netns", "exec", lab.bridge_ns(lan), "nft", "-f", "-"], input=text)
    return tbl


def read_counters(lab: Lab, lan: str, tbl: str) -> dict[str, int]:
    """{comment: packets} of the counters of :func:`install_counters`."""
    cp = run(["ip", "netns", "exec", lab.bridge_ns(lan), "nft", "-j", "list", "table", "bridge", tbl])
    out: dict[str, int] = {}
    for item in json.loads(cp.stdout)["nftables"]:
        rule = item.get("rule")
        if rule:
            for expr in rule["expr"]:
                if "counter" in expr:
                    out[rule.get("comment", "")] = expr["counter"]["packets"]
    return out


def one(impl: str, n: int, advert_ms: int, duration_s: float, run_no: int = 0,
        converge_s: float = 60.0, topo: str = "pair") -> dict:
    """One scale measurement of *impl*; returns a record (see module docstring)."""
    cls = IMPLS[impl]
    lab = Lab(resolve(topo))
    rec: dict = {"impl": impl, "vrids": n, "advert_ms": advert_ms, "duration_s": duration_s,
                 "run": run_no}
    routers: list = []
    try:
        return _measure(lab, cls, rec, n, advert_ms, duration_s, converge_s, routers)
    finally:
        lab.down()
        for r in routers:
            r._close_fifo()     # the notify reader threads of this run


def _measure(lab: Lab, cls: type, rec: dict, n: int, advert_ms: int, duration_s: float,
             converge_s: float, routers: list) -> dict:
    lab.up()
    for node, prio in zip(lab.topo.routers()[:2], (200, 100), strict=True):
        r = type(f"{cls.__name__}{n}", (cls,), {"n_vrids": n})()
        r.configure(lab, node, "lan", 1, vip_for(1), prio, advert_ms)
        routers.append(r)
        r.start()
    m, b = routers
    t0 = time.monotonic()
    try:
        wait_until(lambda: m.states().get("master") == n and b.states().get("backup") == n,
                   converge_s, interval=0.25, what=f"{rec['impl']}: {n} masters on r1, {n} backups on r2")
    except TimeoutError as exc:
        rec["error"] = f"{exc}: r1 {m.states()} r2 {b.states()}"
        log.warning("%s", rec["error"])
        return rec
    rec["converge_s"] = round(time.monotonic() - t0, 2)
    time.sleep(max(1.0, 5 * advert_ms / 1000))       # GARPs, macvlan setup, first learn done
    tbl = install_counters(lab, "lan", [m.node, b.node])
    tr0 = {r.node: r.transitions() for r in routers}
    pids = {r.node: list(r.pids().values()) for r in routers}
    c0, cpu0, w0 = read_counters(lab, "lan", tbl), {k: cpu_ticks(v) for k, v in pids.items()}, \
        time.monotonic()
    time.sleep(duration_s)
    cpu1, w1 = {k: cpu_ticks(v) for k, v in pids.items()}, time.monotonic()
    c1 = read_counters(lab, "lan", tbl)
    rss = {k: rss_kb(v) for k, v in pids.items()}
    tr1 = {r.node: r.transitions() for r in routers}
    st = {r.node: r.states() for r in routers}
    alive = {r.node: sorted(r.pids()) for r in routers}
    d = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    sent, recv = d.get(f"{m.node}-sent", 0), d.get(f"{b.node}-recv", 0)
    cpu_m = (cpu1[m.node] - cpu0[m.node]) / CLK_TCK
    cpu_b = (cpu1[b.node] - cpu0[b.node]) / CLK_TCK
    spurious = sum((tr1[k] or 0) - (tr0[k] or 0) for k in tr0)
    rec.update(
        window_s=round(w1 - w0, 3), expected_adverts=round(n * (w1 - w0) * 1000 / advert_ms),
        adverts_sent=sent, adverts_received=recv, backup_sent=d.get(f"{b.node}-sent", 0),
        cpu_master_s=round(cpu_m, 3), cpu_backup_s=round(cpu_b, 3),
        cpu_master_pct=round(100 * cpu_m / (w1 - w0), 1), cpu_backup_pct=round(100 * cpu_b / (w1 - w0), 1),
        us_per_sent=round(cpu_m * 1e6 / sent, 2) if sent else None,
        us_per_received=round(cpu_b * 1e6 / recv, 2) if recv else None,
        rss_master_kb=sum(rss[m.node].values()), rss_backup_kb=sum(rss[b.node].values()),
        rss_detail={k: {str(p): v for p, v in x.items()} for k, x in rss.items()},
        processes=alive, spurious_transitions=spurious,
        transitions_known=all(v is not None for v in tr1.values()),
        states_end=st)
    return rec


def table(rows: list[dict]) -> str:
    """Median over runs per implementation (and the ratio to keepalived)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["vrids"], r["advert_ms"], r["impl"]), []).append(r)

    def med(rs: list[dict], k: str) -> float | None:
        v = [r[k] for r in rs if r.get(k) is not None]
        return statistics.median(v) if v else None

    ka = {(n, a): rs for (n, a, i), rs in groups.items() if i == "keepalived"}
    lines = [(f"{'vrids':>5} {'advert':>7} {'impl':11} {'runs':>4} {'sent/s':>7} {'µs/sent':>8} "
              f"{'µs/recv':>8} {'CPU% m':>7} {'CPU% b':>7} {'RSS m MB':>8} {'RSS b MB':>8} "
              f"{'spurious':>8} {'bk sent':>7} {'vs ka sent':>10} {'vs ka recv':>10}")]
    order = lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "vmacd")   # vmacd first in each group
    for (n, adv, impl), rs in sorted(groups.items(), key=order):
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"{n:>5} {adv:>5}ms {impl:11} {0:>2}/{len(rs):<1} failed: {rs[0].get('error')}")
            continue
        rate = statistics.median(r["adverts_sent"] / r["window_s"] for r in ok)
        base = ka.get((n, adv))

        def ratio(k: str, base: list[dict] | None = base, ok: list[dict] = ok) -> str:
            if not base:
                return "-"
            b, v = med(base, k), med(ok, k)
            return f"{v / b:.2f}x" if b and v is not None else "-"

        f = (lambda v, w, p=1: f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}}")
        lines.append(f"{n:>5} {adv:>5}ms {impl:11} {len(ok):>2}/{len(rs):<1} {rate:7.0f} "
                     f"{f(med(ok, 'us_per_sent'), 8)} {f(med(ok, 'us_per_received'), 8)} "
                     f"{f(med(ok, 'cpu_master_pct'), 7)} {f(med(ok, 'cpu_backup_pct'), 7)} "
                     f"{f(med(ok, 'rss_master_kb') / 1024, 8)} {f(med(ok, 'rss_backup_kb') / 1024, 8)} "
                     f"{max(r['spurious_transitions'] for r in ok):>8} "
                     f"{max(r['backup_sent'] for r in ok):>7} "
                     f"{ratio('us_per_sent'):>10} {ratio('us_per_received'):>10}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run every impl --runs times (interleaved), print the table, write --json; exit 0 when every
    run measured and saw no spurious transition."""
    impls = [s for s in args.impl.split(",") if s]
    for i in impls:
        if i not in IMPLS:
            raise SystemExit(f"bench scale: no scale support for {i!r} (known: {', '.join(IMPLS)})")
    advert = parse_duration_ms(args.advert)
    duration = parse_duration_ms(args.duration) / 1000
    rows = []
    for k in range(args.runs):
        for impl in impls:
            rec = one(impl, args.vrids, advert, duration, k)
            rows.append(rec)
            if "error" in rec:
                print(f"run {k} {impl:10}: FAILED {rec['error']}", flush=True)
            else:
                print(f"run {k} {impl:10}: {rec['adverts_sent']} sent, {rec['adverts_received']} received "
                      f"in {rec['window_s']:.1f} s; {rec['us_per_sent']} µs/sent, {rec['us_per_received']} "
                      f"µs/recv; RSS {rec['rss_master_kb'] / 1024:.1f}/{rec['rss_backup_kb'] / 1024:.1f} MB; "
                      f"spurious {rec['spurious_transitions']}, backup sent {rec['backup_sent']}", flush=True)
    print(table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    good = all("error" not in r and r["spurious_transitions"] == 0 and r["backup_sent"] == 0 for r in rows)
    return 0 if good else 1
