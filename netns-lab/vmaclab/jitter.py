"""``vmac-lab bench jitter``: does the master keep its advertisement rhythm under load?

Two routers (pair topology, one VRID, r1 master at priority 200); a capture on r1's bridge port
(kernel receive timestamps, SO_TIMESTAMPNS, in the bridge namespace) records every advertisement r1
sends. Per run the inter-departure times are compared with the configured interval:
``dev = gap - interval``; the table shows p50/p99/max of ``|dev|`` and the worst late gap.

Loads (in the master's namespace, for the measurement window only):

* ``none``       -- idle (always measured: the reference);
* ``cpu``        -- one busy-loop process, unpinned (on 2 cores: "the other core busy");
* ``cpu-all``    -- one busy loop per core, unpinned (every core busy);
* ``cpu-pinned`` -- the daemon's threads and one busy loop pinned to the same CPU (taskset);
* ``gc``         -- allocation churn in the daemon: control-socket ``status``+``history`` requests at
  200/s, so its garbage collector runs (vmacd only: keepalived is C without a collector, n/a).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from . import impls
from .lab import Lab
from .observe import Observer, adverts
from .topology import resolve
from .util import log, parse_duration_ms, run, wait_until

LOADS = ("none", "cpu", "cpu-all", "cpu-pinned", "gc")
HOG = [sys.executable, "-c", "while True: pass"]


def _pct(vals: list[float], q: float) -> float:
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def stats(t_ns: list[int], interval_ms: float) -> dict:
    """Inter-departure figures of send times *t_ns* against *interval_ms*."""
    gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(t_ns)]
    if not gaps:
        return {"n": 0}
    dev = [abs(g - interval_ms) for g in gaps]
    return {"n": len(gaps), "mean_gap_ms": round(statistics.fmean(gaps), 3),
            "p50_ms": round(_pct(dev, 50), 3), "p99_ms": round(_pct(dev, 99), 3),
            "max_ms": round(max(dev), 3), "max_gap_ms": round(max(gaps), 3),
            "min_gap_ms": round(min(gaps), 3),
            "late_10pct": sum(1 for g in gaps if g > interval_ms * 1.1)}


def _pin(pids: list[int], cpu: int) -> None:
    for pid in pids:
        run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=False)


def _churn(router, stop: threading.Event, rate: float = 200.0) -> None:
    period, nxt = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        router.control({"cmd": "status"} if int(nxt * rate) % 2 else {"cmd": "history"})
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))


def one(impl: str, load: str, advert_ms: int, duration_s: float, run_no: int = 0) -> dict:
    """One window of *impl* under *load*; returns a record with the jitter figures."""
    rec: dict = {"impl": impl, "load": load, "advert_ms": advert_ms, "duration_s": duration_s,
                 "run": run_no}
    if load == "gc" and impl != "vmacd":
        rec["skipped"] = f"{impl} has no garbage collector"
        return rec
    lab = Lab(resolve("pair"))
    rs = []
    with lab:
        for node, prio in zip(lab.topo.routers()[:2], (200, 100), strict=True):
            r = impls.get(impl)().configure(lab, node, "lan", 51, lab.vip("lan"), prio, advert_ms)
            r.start()
            rs.append(r)
        wait_until(lambda: [r.state() for r in rs] == ["master", "backup"], 15.0,
                   what=f"{impl} election")
        m = rs[0]
        obs = Observer.start(lab.bridge_ns("lan"), [lab.bridge_port(m.node, "lan")],
                             str(lab.workdir("c1") / "adverts.jsonl"), kinds=["vrrp"])
        time.sleep(max(0.5, 3 * advert_ms / 1000))
        hogs, stop, churn = [], threading.Event(), None
        if load == "cpu-pinned":
            cpu = max(os.sched_getaffinity(0))
            _pin(m.vrrp_pids(), cpu)
            hogs.append(lab.popen(m.node, ["taskset", "-c", str(cpu), *HOG]))
            rec["cpu"] = cpu
        elif load in ("cpu", "cpu-all"):
            for _ in range(1 if load == "cpu" else os.cpu_count() or 2):
                hogs.append(lab.popen(m.node, HOG))
        elif load == "gc":
            churn = threading.Thread(target=_churn, args=(m, stop), daemon=True)
            churn.start()
        t0 = time.monotonic_ns()
        time.sleep(duration_s)
        t1 = time.monotonic_ns()
        stop.set()
        for h in hogs:
            h.kill()
            h.wait(timeout=5)
        if churn is not None:
            churn.join(timeout=5)
        ev = obs.stop()
        sent = [e["t_ns"] for e in adverts(ev, vrid=51, direction="rx")
                if e.get("priority") == 200 and t0 <= e["t_ns"] <= t1]
        rec["ts"] = sorted({e.get("ts") for e in adverts(ev, vrid=51, direction="rx")})
        rec["state_end"] = [r.state() for r in rs]
        rec.update(stats(sent, advert_ms))
        rec["expected"] = int((t1 - t0) / 1e6 / advert_ms)
    return rec


def table(rows: list[dict]) -> str:
    """Median over runs of each figure per (load, impl)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["advert_ms"], r["load"], r["impl"]), []).append(r)
    lines = [(f"{'advert':>7} {'load':11} {'impl':11} {'runs':>4} {'gaps':>5} {'mean gap':>9} "
              f"{'|dev| p50':>9} {'p99':>7} {'max':>7} {'max gap':>8} {'late>10%':>8}   (ms)")]
    for (adv, load, impl), rs in sorted(groups.items(),
                                        key=lambda kv: (kv[0][0], LOADS.index(kv[0][1]) if kv[0][1] in LOADS
                                                        else 9, kv[0][2] != "vmacd")):
        ok = [r for r in rs if r.get("n")]
        if not ok:
            why = rs[0].get("skipped") or rs[0].get("error") or "no adverts"
            lines.append(f"{adv:>5}ms {load:11} {impl:11} {0:>2}/{len(rs):<1} n/a ({why})")
            continue

        def med(k: str, ok: list[dict] = ok) -> float:
            return statistics.median(r[k] for r in ok)
        lines.append(f"{adv:>5}ms {load:11} {impl:11} {len(ok):>2}/{len(rs):<1} {int(med('n')):>5} "
                     f"{med('mean_gap_ms'):9.2f} {med('p50_ms'):9.3f} {med('p99_ms'):7.3f} "
                     f"{med('max_ms'):7.3f} {med('max_gap_ms'):8.2f} {int(med('late_10pct')):>8}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Idle plus each --load, implementations interleaved; table and --json; exit 0 when every
    (non-skipped) window produced figures."""
    impl_list = [s for s in args.impl.split(",") if s]
    loads = ["none"] + [s for s in args.load.split(",") if s and s != "none"]
    for load in loads:
        if load not in LOADS:
            raise SystemExit(f"bench jitter: unknown load {load!r} (known: {', '.join(LOADS)})")
    advert = parse_duration_ms(args.advert)
    duration = parse_duration_ms(args.duration) / 1000
    rows = []
    for k in range(args.runs):
        for load in loads:
            for impl in impl_list:
                try:
                    rec = one(impl, load, advert, duration, k)
                except Exception as exc:  # noqa: BLE001 - one broken window must not stop the rest
                    log.warning("%s %s: %s", impl, load, exc)
                    rec = {"impl": impl, "load": load, "advert_ms": advert, "run": k,
                           "error": str(exc).splitlines()[0]}
                rows.append(rec)
                if rec.get("n"):
                    print(f"run {k} {load:10} {impl:10}: {rec['n']} gaps, |dev| p50 {rec['p50_ms']:.3f} "
                          f"p99 {rec['p99_ms']:.3f} max {rec['max_ms']:.3f} ms", flush=True)
                else:
                    print(f"run {k} {load:10} {impl:10}: "
                          f"{rec.get('skipped') or rec.get('error') or 'no adverts'}", flush=True)
    print(table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r.get("n") or r.get("skipped") for r in rows) else 1
