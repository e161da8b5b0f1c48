"""``vmac-lab bench soak``: the fast profile (10 ms / 20 ms advertisements) held for a long time
under CPU load, then a crash of the master.

Per (advert, implementation) one lab (``pair``: r1 priority 200, r2 150, client c1), one pair at a
time: implementations run one after the other for the whole duration (vmacd, then keepalived, per
advert interval), never side by side -- on two cores two loaded pairs would measure each other.

1. Election (r1 master, r2 backup), echo servers on both routers, nftables counters of the VRRP
   frames each router sends (bridge namespace), a capture of the advertisements at both bridge
   ports (kernel timestamps).
2. The load (``--load``, jitter.py's loads: ``cpu-all`` = one busy loop per core) in *both* routers'
   namespaces, for the whole soak and the crash after it. ``--sched``: ``default`` runs the daemons
   as they ship (vmacd: SCHED_RR at its default ``realtime_priority`` 5; keepalived: SCHED_OTHER,
   no ``vrrp_rt_priority``); ``other`` both SCHED_OTHER, like the busy loops (vmacd with
   ``realtime_priority = 0``); ``fifo`` gives the processes that speak VRRP (vmacd's daemon,
   keepalived's VRRP child) SCHED_FIFO priority 10 once they run (``chrt``), both alike.
3. ``--duration`` of nothing injected. ``false_transitions``: state changes either daemon reports in
   that window (notify fifo: vmacd's notify script, keepalived's notify_fifo); none is caused by a
   fault, so every one is false. ``backup_adverts``: VRRP frames r2 sent in the window (the wire's
   view of the same thing). ``max_gap_ms``/``gaps_over_mdi``: the longest silence between r1's
   advertisements and how many silences were longer than r2's Master_Down_Interval (each should
   have made r2 take over), ``late_adverts``: silences longer than 1.5 intervals, ``sent_ratio``:
   r1's advertisements / interval-count of the window, ``runq_wait_s``: how long r1's VRRP process
   was runnable but waiting for a CPU in the window (``/proc/PID/schedstat``).
4. The crash of r1 (bridge port cut, daemons SIGKILLed) with the client probing the VIP every
   5 ms: ``outage_ms``, ``lost``, ``takeover_ms`` (r2's first advertisement after the fault) and
   ``late_ms`` (takeover minus last advertisement of r1 + Master_Down_Interval).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

from . import scenario
from .faults import fault
from .jitter import HOG
from .lab import Lab
from .observe import Observer, adverts
from .prober import EchoServer, Prober
from .record import rfc_bounds
from .scale import install_counters, read_counters, schedstat_s
from .topology import resolve
from .util import log, parse_duration_ms, run, wait_until

PRIORITIES = (200, 150)
SOAK_LOADS = ("none", "cpu", "cpu-all")
SCHEDS = ("default", "other", "fifo")
RT_PRIORITY = 10
KEYS = ("impl", "advert_ms", "run", "load", "sched", "policy", "duration_s", "false_transitions",
        "backup_adverts", "master_adverts", "sent_ratio", "max_gap_ms", "gaps_over_mdi", "late_adverts",
        "runq_wait_s", "mdi_ms", "outage_ms", "lost", "takeover_ms", "late_ms", "new_master")


def _hogs(lab: Lab, nodes: list[str], load: str) -> list:
    per_node = {"none": 0, "cpu": 1, "cpu-all": os.cpu_count() or 2}[load]
    return [lab.popen(node, HOG) for node in nodes for _ in range(per_node)]


def _realtime(rs: list) -> None:
    for r in rs:
        for pid in r.vrrp_pids():
            run(["chrt", "-a", "-f", "-p", str(RT_PRIORITY), str(pid)])


def policy(pid: int) -> str:
    """Scheduling policy and priority of *pid*, e.g. ``rr 5``, ``fifo 10``, ``other 0``."""
    names = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr",
             os.SCHED_BATCH: "batch", os.SCHED_IDLE: "idle"}
    pol = os.sched_getscheduler(pid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return f"{names.get(pol, pol)} {os.sched_getparam(pid).sched_priority}"


def _runq_s(pids: list[int]) -> float:
    """Seconds *pids* (every thread) spent runnable, waiting for a CPU, so far."""
    return schedstat_s(pids, 1)


def _changes(history: list[tuple[float, str]], t0: float, t1: float) -> list[dict]:
    """State changes reported in [t0, t1): entries whose state differs from the one before."""
    out, prev = [], None
    for t, st in history:
        if t0 <= t < t1 and prev is not None and st != prev:
            out.append({"t": round(t - t0, 3), "state": st})
        prev = st
    return out


def _gaps(ts: list[int]) -> list[float]:
    return [(b - a) / 1e6 for a, b in itertools.pairwise(ts)]


def one(impl: str, advert_ms: int, duration_s: float, load: str = "cpu-all", sched: str = "default",
        run_no: int = 0) -> dict:
    """One soak of *impl* (see module docstring); a row with the figures, or ``error``."""
    rec: dict = dict.fromkeys(KEYS) | {"impl": impl, "advert_ms": advert_ms, "run": run_no,
                                       "load": load, "sched": sched, "duration_s": duration_s}
    mdi = rfc_bounds(advert_ms, PRIORITIES[1])[0]
    rec["mdi_ms"] = round(mdi, 3)
    lab = Lab(resolve("pair"))
    rec["prefix"] = lab.prefix
    hogs: list = []
    with lab:
        extra = {"realtime_priority": 0} if sched == "other" and impl == "vmacd" else {}
        sc = scenario.Scenario(impl=impl, advert_ms=advert_ms, top_priority=PRIORITIES[0],
                               priority_step=PRIORITIES[0] - PRIORITIES[1], timeout_s=15.0,
                               extra=extra)
        rs = scenario._start_routers(lab, sc)
        m, b = rs
        if sched == "fifo":
            _realtime(rs)
        echoes = [EchoServer.start(lab.ns(r.node), r.node) for r in rs]
        ports = {lab.bridge_port(r.node, "lan"): r.node for r in rs}
        obs = Observer.start(lab.bridge_ns("lan"), list(ports), str(lab.workdir("c1") / "soak.jsonl"),
                             kinds=["vrrp"])
        tbl = install_counters(lab, "lan", [m.node, b.node])
        try:
            hogs = _hogs(lab, [m.node, b.node], load)
            time.sleep(max(0.5, 5 * advert_ms / 1000))           # the load is on
            vrrp = m.vrrp_pids()
            rec["policy"] = policy(vrrp[0])
            c0, t0, t0_ns = read_counters(lab, "lan", tbl), time.monotonic(), time.monotonic_ns()
            q0 = _runq_s(vrrp)
            _sleep(duration_s, rs)
            c1, t1, t1_ns = read_counters(lab, "lan", tbl), time.monotonic(), time.monotonic_ns()
            rec["runq_wait_s"] = round(_runq_s(vrrp) - q0, 3)
            changes = {r.node: _changes(r.history, t0, t1) for r in rs}
            rec["transitions"] = changes
            rec["false_transitions"] = sum(len(v) for v in changes.values())
            rec["backup_adverts"] = c1.get(f"{b.node}-sent", 0) - c0.get(f"{b.node}-sent", 0)
            rec["master_adverts"] = c1.get(f"{m.node}-sent", 0) - c0.get(f"{m.node}-sent", 0)
            rec["sent_ratio"] = round(rec["master_adverts"] / ((t1 - t0) * 1000 / advert_ms), 4)
            rec["states_end"] = [r.state() for r in rs]
            _crash(lab, rec, m, b, advert_ms)
        finally:
            for h in hogs:
                h.kill()
                h.wait(timeout=5)
            try:
                ev = obs.stop()
            except RuntimeError as exc:
                log.warning("soak capture: %s", exc)
                ev = []
            for e in echoes:
                e.stop()
    _wire(rec, ev, lab, m.node, b.node, t0_ns, t1_ns, mdi, advert_ms)
    return rec


def _sleep(duration_s: float, rs: list) -> None:
    """The soak window; ends early (ValueError) when a daemon died."""
    end = time.monotonic() + duration_s
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(5.0, left))
        dead = [r.node for r in rs if not r.pids()]
        if dead:
            raise ValueError(f"daemon gone on {', '.join(dead)} during the soak")


def _crash(lab: Lab, rec: dict, m, b, advert_ms: int) -> None:
    """Crash r1 under the same load with the client probing; outage and takeover."""
    prober = Prober.start(lab.ns("c1"), lab.vip("lan"), interval_ms=5.0,
                          out_path=str(lab.workdir("c1") / "probes.jsonl"))
    time.sleep(0.3)
    done = fault(lab, m, "crash")
    rec["fault_ns"] = int(done["t"] * 1e9)
    try:
        wait_until(lambda: b.state() == "master", 10.0, interval=0.005, what="r2 master after the crash")
        rec["new_master"] = b.node
    except TimeoutError as exc:
        log.warning("%s", exc)
    time.sleep(max(0.5, 5 * advert_ms / 1000))
    summary = prober.stop()
    rec["outage_ms"] = summary.outage_ms if rec["new_master"] else None
    rec["lost"] = summary.lost


def _wire(rec: dict, ev: list[dict], lab: Lab, m: str, b: str, t0_ns: int, t1_ns: int,
          mdi: float, advert_ms: int) -> None:
    """The capture's figures: r1's rhythm in the window, r2's takeover after the crash."""
    pm, pb = lab.bridge_port(m, "lan"), lab.bridge_port(b, "lan")
    ours = [e for e in adverts(ev) if e["ifname"] == pm and e.get("priority")]
    window = [e["t_ns"] for e in ours if t0_ns <= e["t_ns"] <= t1_ns]
    gaps = _gaps(window)
    if gaps:
        rec["max_gap_ms"] = round(max(gaps), 2)
        rec["gaps_over_mdi"] = sum(1 for g in gaps if g > mdi)
        rec["late_adverts"] = sum(1 for g in gaps if g > 1.5 * advert_ms)
    f = rec.get("fault_ns")
    if f is None:
        return
    before = [e["t_ns"] for e in ours if e["t_ns"] <= f]
    after = [e["t_ns"] for e in adverts(ev) if e["ifname"] == pb and e["t_ns"] >= f]
    if after:
        rec["takeover_ms"] = round((after[0] - f) / 1e6, 2)
        if before:
            rec["late_ms"] = round((after[0] - before[-1]) / 1e6 - mdi, 2)


def table(rows: list[dict]) -> str:
    """Per (advert, sched, impl): sums over the runs of false transitions, backup advertisements,
    late advertisements, silences beyond MDI and run-queue wait; the worst silence of the master;
    medians of the sent ratio and of the crash's outage, lost probes, takeover and lateness."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["advert_ms"], r["sched"], r["impl"]), []).append(r)
    lines = [(f"{'advert':>7} {'sched':7} {'impl':11} {'policy':8} {'runs':>4} {'soak s':>6} {'false':>5} "
              f"{'bk adv':>6} {'sent':>6} {'late':>5} {'max gap':>8} {'>MDI':>4} {'MDI':>5} {'runq':>6} | "
              f"{'crash: outage':>13} {'lost':>4} {'takeover':>8} {'late':>5}"),
             (f"{'':>7} {'':7} {'':11} {'':8} {'':>4} {'':>6} {'trans':>5} {'':>6} {'ratio':>6} "
              f"{'adv':>5} {'ms':>8} {'':>4} {'ms':>5} {'wait s':>6} | {'ms':>13} {'':>4} {'ms':>8} "
              f"{'ms':>5}")]
    order = {"vmacd": 0, "keepalived": 1}
    for (adv, sched, impl), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], SCHEDS.index(kv[0][1]) if kv[0][1] in SCHEDS else 9, order.get(kv[0][2], 9))):
        head = f"{adv:>5}ms {sched:7} {impl:11} {rs[0].get('policy') or '-':8}"
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"{head} {0:>2}/{len(rs):<1} failed: {rs[0].get('error')}")
            continue

        def med(k: str, ok: list[dict] = ok) -> float | None:
            v = [r[k] for r in ok if r.get(k) is not None]
            return statistics.median(v) if v else None

        def tot(k: str, ok: list[dict] = ok) -> int | float:
            return sum(r.get(k) or 0 for r in ok)

        def f(v: float | None, w: int, p: int = 1) -> str:
            return f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}}"
        gap = max((r["max_gap_ms"] for r in ok if r.get("max_gap_ms") is not None), default=None)
        lines.append(f"{head} {len(ok):>2}/{len(rs):<1} {tot('duration_s'):6.0f} "
                     f"{tot('false_transitions'):>5} {tot('backup_adverts'):>6} "
                     f"{f(med('sent_ratio'), 6, 3)} {tot('late_adverts'):>5} {f(gap, 8)} "
                     f"{tot('gaps_over_mdi'):>4} {f(ok[0]['mdi_ms'], 5)} {f(tot('runq_wait_s'), 6)} | "
                     f"{f(med('outage_ms'), 13)} {f(med('lost'), 4, 0)} {f(med('takeover_ms'), 8)} "
                     f"{f(med('late_ms'), 5)}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Every run x advert x sched x impl in turn; table and --json; exit 0 when every soak produced
    its figures and vmacd made no false transition."""
    impl_list = [s for s in args.impl.split(",") if s]
    adverts_ms = [parse_duration_ms(s) for s in args.advert.split(",") if s]
    scheds = [s for s in args.sched.split(",") if s]
    if args.load not in SOAK_LOADS:
        raise SystemExit(f"bench soak: unknown load {args.load!r} (known: {', '.join(SOAK_LOADS)})")
    for sched in scheds:
        if sched not in SCHEDS:
            raise SystemExit(f"bench soak: unknown --sched {sched!r} (known: {', '.join(SCHEDS)})")
    duration = parse_duration_ms(args.duration) / 1000
    rows = []
    for k in range(args.runs):
        for adv in adverts_ms:
            for sched in scheds:
                for impl in impl_list:
                    try:
                        rec = one(impl, adv, duration, args.load, sched, k)
                    except Exception as exc:  # noqa: BLE001 - one broken soak must not stop the rest
                        log.warning("%s %s ms: %s", impl, adv, exc)
                        rec = dict.fromkeys(KEYS) | {"impl": impl, "advert_ms": adv, "run": k,
                                                     "load": args.load, "sched": sched,
                                                     "duration_s": duration,
                                                     "error": str(exc).splitlines()[0]}
                    rows.append(rec)
                    print(_progress(rec), flush=True)
    print(table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    good = all("error" not in r and r["outage_ms"] is not None for r in rows) and \
        all(r["false_transitions"] == 0 and r["backup_adverts"] == 0 for r in rows if r["impl"] == "vmacd")
    return 0 if good else 1


def _progress(rec: dict) -> str:
    head = (f"run {rec['run']} {rec['advert_ms']:>4} ms {rec['sched']:7} {rec['impl']:10} "
            f"{rec['load']} ({rec.get('policy')}):")
    if "error" in rec:
        return f"{head} FAILED {rec['error']}"
    return (f"{head} {rec['duration_s']:.0f} s, false transitions {rec['false_transitions']}, backup "
            f"adverts {rec['backup_adverts']}, max gap {rec['max_gap_ms']} ms (MDI {rec['mdi_ms']}), "
            f"run-queue wait {rec['runq_wait_s']} s; crash: outage {rec['outage_ms']} ms, lost "
            f"{rec['lost']}, takeover {rec['takeover_ms']} ms")
