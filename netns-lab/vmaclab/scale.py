"""``vmac-lab bench scale``: two routers with N VRIDs each (one instance per VRID, vMAC on).

Per implementation and N, one lab per run: r1 (priority 200) and r2 (priority 100) are started one
after the other (start-up figures, :mod:`vmaclab.scalelife`), then, over a measurement window after
every instance has converged (r1 master of all, r2 backup of all):

* CPU time of the daemon processes (``/proc/PID/task/*/schedstat``; vmacd: daemon + guardian,
  keepalived: parent + VRRP child) on the master and on the backup;
* advertisements sent by the master and delivered to the backup, counted by nftables counters in the
  LAN's bridge namespace (``prerouting`` on the master's port, ``forward`` out of the backup's port):
  exact, and no capture process competing for the two cores;
* -> CPU µs per advertisement sent (master) and per advertisement received (backup);
* RSS (``VmRSS``) per daemon process on both routers (vmacd: daemon and guardian; keepalived:
  parent and VRRP child) and their sum;
* spurious transitions during the window: state changes the daemons report (vmacd: control-socket
  history; keepalived: notify_fifo lines that change an instance's state), plus advertisements the
  backup sent (must both be 0).

Then a reload of the master and the stop of both routers (:mod:`vmaclab.scalelife`); the tables are
in :mod:`vmaclab.scaletable`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from . import scalelife, scaletable
from .impls.base import RouterConfig
from .impls.keepalived import KEEPALIVED, Keepalived
from .impls.vmacd import Vmacd
from .lab import Lab
from .topology import resolve
from .util import log, parse_duration_ms, run


def vip_for(vrid: int) -> str:
    """A /32 VIP per VRID from documentation ranges (198.51.100.VRID; 255 -> 203.0.113.1)."""
    return f"198.51.100.{vrid}" if vrid <= 254 else "203.0.113.1"


def _vrids(cfg, n: int) -> list[int]:
    return list(range(cfg.vrid, cfg.vrid + n))


class _Scale:
    """What the scale bench asks of a router with ``n_vrids`` instances (mixed into the impls)."""

    n_vrids = 1
    proc: subprocess.Popen | None
    cfg: RouterConfig | None

    def _scale_init(self) -> None:
        self.priorities: dict[int, int] = {}     # per-VRID priority changes (the reload)

    def prio(self, vrid: int) -> int:
        assert self.cfg is not None
        return self.priorities.get(vrid, self.cfg.priority)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def first_answer(self, t_exec: float, budget_s: float) -> float | None:
        """Wall time of the control socket's first ``status`` answer (None: no control socket, or
        none within *budget_s* of *t_exec*)."""
        return None

    def roles_rss_kb(self) -> dict[str, int]:
        """VmRSS per process role (vmacd: vmacd, guardian; keepalived: keepalived, vrrp)."""
        pids = self.pids()                                      # type: ignore[attr-defined]
        by_pid = rss_kb(list(pids.values()))
        return {role: by_pid[pid] for role, pid in pids.items() if pid in by_pid}


class ScaleVmacd(_Scale, Vmacd):
    """vmacd with ``n_vrids`` instances (VRIDs vrid..vrid+n-1), one /32 VIP each. No notify
    script (the state comes from the control socket), so a transition costs no fork."""

    def __init__(self) -> None:
        super().__init__()
        self._scale_init()

    def render(self) -> str:
        c = self.cfg
        assert c is not None and self.lab is not None
        iface = self.lab.ifname(c.node, c.lan)
        lines = ["[global]", f'node = "{c.node}"', f'control_socket = "{self.socket_path}"',
                 'metrics_listen = ""', f'state_dir = "{self.dir / "state"}"']
        for v in _vrids(c, self.n_vrids):
            lines += ["", "[[instance]]", f'name = "v{v}"', f'interface = "{iface}"', f"vrid = {v}",
                      f"version = {c.version}", f"priority = {self.prio(v)}",
                      f'advert_interval = "{c.advert_ms}ms"', f'virtual_ips = ["{vip_for(v)}/32"]',
                      "vmac = true", "accept = true", "garp_repeat = 1"]
        return "\n".join(lines) + "\n"

    def launch(self) -> float:
        """Start the daemon without waiting for it; returns the wall time of the exec."""
        assert self.lab is not None and self.cfg is not None
        log_fh = (self.dir / "vmacd.log").open("ab")
        argv = [sys.executable, "-m", "vmacd", "run", "-c", str(self.conf_path), "--log-format",
                "text", "--log-level", "info"]
        t = time.time()
        self.proc = self.lab.popen(self.node, argv, stdout=log_fh, stderr=subprocess.STDOUT)
        log_fh.close()
        return t

    def first_answer(self, t_exec: float, budget_s: float) -> float | None:
        from vmacd.cli.ctl import Unreachable, request
        deadline = t_exec + budget_s
        while self.running() and time.time() < deadline:
            try:
                request(str(self.socket_path), {"cmd": "status"}, timeout=max(0.1, deadline - time.time()))
                return time.time()
            except (Unreachable, OSError, ValueError):
                time.sleep(0.005)
        return None

    def states(self) -> dict[str, int]:
        """{state: count} over every instance (daemon's status)."""
        reply = self.status() or {}
        out: dict[str, int] = {}
        for inst in reply.get("instances", []):
            out[inst["state"]] = out.get(inst["state"], 0) + 1
        return out

    def _last(self) -> dict[str, dict] | None:
        reply = self.control({"cmd": "history"})
        if reply is None:
            return None
        last: dict[str, dict] = {}
        for h in reply.get("history", []):          # oldest first
            last[h["instance"]] = h
        return last

    def reached(self, state: str, n: int) -> float | None:
        """Wall time at which every one of *n* instances had entered *state* and stayed there
        (None while some instance is elsewhere)."""
        last = self._last()
        if last is None or len(last) < n or any(h["to"] != state for h in last.values()):
            return None
        return max(h["time"] for h in last.values())

    def transitions(self) -> int | None:
        """Transitions the daemon has recorded so far (control-socket history)."""
        reply = self.control({"cmd": "history"})
        return None if reply is None else len(reply.get("history", []))


class ScaleKeepalived(_Scale, Keepalived):
    """keepalived with ``n_vrids`` vrrp_instances (use_vmac), states counted per instance."""

    def __init__(self) -> None:
        super().__init__()
        self._scale_init()
        self.inst_state: dict[str, str] = {}
        self.inst_since: dict[str, float] = {}
        self.n_transitions = 0

    def render(self) -> str:
        c = self.cfg
        assert c is not None and self.lab is not None
        iface = self.lab.ifname(c.node, c.lan)
        # script_user before notify_fifo: keepalived 2.2.7 drops the fifo on a reload otherwise
        lines = ["global_defs {", f"  router_id {c.node}", "  script_user root",
                 f"  notify_fifo {self.dir / 'notify.fifo'}", "  enable_script_security",
                 f"  vrrp_version {c.version}", "  vrrp_garp_master_repeat 1", "}"]
        for v in _vrids(c, self.n_vrids):
            lines += [f"vrrp_instance VI_{v} {{", "  state BACKUP", f"  interface {iface}",
                      f"  virtual_router_id {v}", f"  priority {self.prio(v)}",
                      f"  advert_int {c.advert_ms / 1000:g}", f"  version {c.version}",
                      f"  use_vmac vrrp4.{v}", "  virtual_ipaddress {", f"    {vip_for(v)}/32", "  }", "}"]
        return "\n".join(lines) + "\n"

    def launch(self) -> float:
        """Start keepalived without waiting for it; returns the wall time of the exec."""
        assert self.lab is not None
        for role in ("main", "vrrp"):
            self._pidfile(role).unlink(missing_ok=True)
        self._open_fifo()
        log_fh = (self.dir / "keepalived.log").open("ab")
        argv = [KEEPALIVED, "-P", "-n", "-l", "-D", "-G", "-f", str(self.conf_path),
                "-p", str(self._pidfile("main")), "-r", str(self._pidfile("vrrp")),
                "-c", str(self._pidfile("checkers")), "-i", self.lab.prefix + self.node]
        t = time.time()
        self.proc = self.lab.popen(self.node, argv, stdout=log_fh, stderr=subprocess.STDOUT)
        log_fh.close()
        return t

    def _parse(self, line: str) -> None:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "INSTANCE":
            name, st = parts[1].strip('"'), parts[2].lower()
            if self.inst_state.get(name) != st:     # a repeated report is no transition
                self.inst_state[name] = st
                self.inst_since[name] = time.time()
                self.n_transitions += 1
        super()._parse(line)

    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for st in list(self.inst_state.values()):
            out[st] = out.get(st, 0) + 1
        return out

    def reached(self, state: str, n: int) -> float | None:
        states, since = dict(self.inst_state), dict(self.inst_since)
        if len(states) < n or any(s != state for s in states.values()):
            return None
        return max(since.values())

    def transitions(self) -> int | None:
        return self.n_transitions


IMPLS = {"vmacd": ScaleVmacd, "keepalived": ScaleKeepalived}


# -- measurement helpers --------------------------------------------------------------------------
def schedstat_s(pids: list[int], field: int) -> float:
    """One field of ``/proc/PID/task/TID/schedstat`` summed over every thread of *pids*, in
    seconds: 0 is the time on a CPU (exact where utime+stime counts 10 ms ticks), 1 the time
    spent runnable, waiting for a CPU."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[field])
            except (OSError, IndexError, ValueError):
                pass
    return total / 1e9


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of *pids* so far, every thread of each."""
    return schedstat_s(pids, 0)


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
        topo: str = "pair") -> dict:
    """One scale measurement of *impl* with *n* VRIDs; returns a record (see module docstring)."""
    cls = IMPLS[impl]
    lab = Lab(resolve(topo))
    rec: dict = {"impl": impl, "vrids": n, "advert_ms": advert_ms, "duration_s": duration_s,
                 "run": run_no}
    routers: list = []
    try:
        lab.up()
        _measure(lab, cls, rec, n, advert_ms, duration_s, routers)
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop the others
        log.warning("%s %d VRIDs run %d: %s", impl, n, run_no, exc)
        rec["error"] = str(exc).splitlines()[0]
    finally:
        for r in routers:
            if r.running():
                r.stop()
        lab.down()
        for r in routers:
            r._close_fifo()     # the notify reader threads of this run
    return rec


def _measure(lab: Lab, cls: type, rec: dict, n: int, advert_ms: int, duration_s: float,
             routers: list) -> None:
    for node, prio in zip(lab.topo.routers()[:2], (200, 100), strict=True):
        r = type(f"{cls.__name__}{n}", (cls,), {"n_vrids": n})()
        r.configure(lab, node, "lan", 1, vip_for(1), prio, advert_ms)
        routers.append(r)
    m, b = routers
    rec["start"] = {m.node: scalelife.start_router(m, n, "master")}
    rec["start"][b.node] = scalelife.start_router(b, n, "backup")
    notes = [v["note"] for v in rec["start"].values() if "note" in v]
    if notes:
        rec["error"] = "; ".join(notes)
        log.warning("%s", rec["error"])
        return
    time.sleep(max(1.0, 5 * advert_ms / 1000))       # GARPs, macvlan setup, first learn done
    tbl = install_counters(lab, "lan", [m.node, b.node])
    _window(lab, tbl, m, b, rec, duration_s)
    steady = rec["cpu_master_s"] / rec["window_s"]
    rec["reload"] = scalelife.reload(lab, m, b, n, advert_ms, lambda: read_counters(lab, "lan", tbl),
                                     steady, cpu_s)
    vips = {vip_for(v) for v in _vrids(m.cfg, n)}
    rec["stop"] = {m.node: scalelife.stop_router(lab, m, n, vips, successor=b)}
    rec["stop"][b.node] = scalelife.stop_router(lab, b, n, vips)


def _window(lab: Lab, tbl: str, m, b, rec: dict, duration_s: float) -> None:
    """The steady-state window: CPU, advertisements, RSS, spurious transitions."""
    n, advert_ms = rec["vrids"], rec["advert_ms"]
    routers = (m, b)
    tr0 = {r.node: r.transitions() for r in routers}
    pids = {r.node: list(r.pids().values()) for r in routers}
    c0, cpu0, w0 = read_counters(lab, "lan", tbl), {k: cpu_s(v) for k, v in pids.items()}, \
        time.monotonic()
    time.sleep(duration_s)
    cpu1, w1 = {k: cpu_s(v) for k, v in pids.items()}, time.monotonic()
    c1 = read_counters(lab, "lan", tbl)
    rss = {r.node: r.roles_rss_kb() for r in routers}
    tr1 = {r.node: r.transitions() for r in routers}
    d = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    sent, recv = d.get(f"{m.node}-sent", 0), d.get(f"{b.node}-recv", 0)
    cpu_m = cpu1[m.node] - cpu0[m.node]
    cpu_b = cpu1[b.node] - cpu0[b.node]
    rec.update(
        window_s=round(w1 - w0, 3), expected_adverts=round(n * (w1 - w0) * 1000 / advert_ms),
        adverts_sent=sent, adverts_received=recv, backup_sent=d.get(f"{b.node}-sent", 0),
        cpu_master_s=round(cpu_m, 3), cpu_backup_s=round(cpu_b, 3),
        cpu_master_pct=round(100 * cpu_m / (w1 - w0), 1), cpu_backup_pct=round(100 * cpu_b / (w1 - w0), 1),
        us_per_sent=round(cpu_m * 1e6 / sent, 2) if sent else None,
        us_per_received=round(cpu_b * 1e6 / recv, 2) if recv else None,
        rss_kb=rss, rss_master_kb=sum(rss[m.node].values()), rss_backup_kb=sum(rss[b.node].values()),
        processes={r.node: sorted(r.pids()) for r in routers},
        spurious_transitions=sum((tr1[k] or 0) - (tr0[k] or 0) for k in tr0),
        transitions_known=all(v is not None for v in tr1.values()),
        states_end={r.node: r.states() for r in routers})


def good(rec: dict) -> bool:
    """Measured, with no spurious transition, no backup advert, and a reload that changed no state."""
    rl = rec.get("reload") or {}
    return ("error" not in rec and rec["spurious_transitions"] == 0 and rec["backup_sent"] == 0
            and rl.get("applied_ms") is not None and rl.get("transitions") == 0
            and rl.get("backup_sent") == 0)


def main(args: argparse.Namespace) -> int:
    """Every N x impl, --runs times (implementations interleaved), print the tables, write --json;
    exit 0 when every run measured, saw no spurious transition and reloaded without one."""
    impls = [s for s in args.impl.split(",") if s]
    for i in impls:
        if i not in IMPLS:
            raise SystemExit(f"bench scale: no scale support for {i!r} (known: {', '.join(IMPLS)})")
    sizes = [int(v) for v in str(args.vrids).split(",") if v]
    for v in sizes:
        if not 1 <= v <= 255:
            raise SystemExit(f"bench scale: --vrids takes 1..255, got {v}")
    advert = parse_duration_ms(args.advert)
    duration = parse_duration_ms(args.duration) / 1000
    rows = []
    for k in range(args.runs):
        for n in sizes:
            for impl in impls:
                rec = one(impl, n, advert, duration, k)
                rows.append(rec)
                print(scaletable.progress(rec), flush=True)
    print(scaletable.table(rows))
    print()
    print(scaletable.life_table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(good(r) for r in rows) else 1
