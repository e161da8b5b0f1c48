"""``vmac-lab bench failover``: every impl x event x advert, implementations interleaved run by run."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from . import scenario
from .util import log, parse_duration_ms

KEYS = ("impl", "event", "advert_ms", "run", "outage_ms", "lost", "mdi_ms", "skew_ms", "old_master",
        "new_master")


def plan(impls: list[str], events: list[str], adverts: list[int], runs: int) -> list[tuple]:
    """(run, advert_ms, event, impl) in execution order: the impl varies fastest."""
    return [(n, a, e, i) for n in range(runs) for a in adverts for e in events for i in impls]


def one(impl: str, event: str, advert_ms: int, run: int, topo: str, out: Path | None) -> dict:
    """One run as a bench row; outage_ms None (and ``error``) when it produced no figure."""
    sc = scenario.Scenario(topology=topo, impl=impl, event=event, advert_ms=advert_ms, run=run,
                           after_ms=max(500, advert_ms), timeout_s=max(10.0, advert_ms * 6 / 1000))
    try:
        rec = scenario.run(sc, out)
        row = {k: rec.get(k) for k in KEYS}
    except Exception as exc:  # one broken run must not stop the others
        log.warning("%s %s %s run %d: %s", impl, event, advert_ms, run, exc)
        row = {k: None for k in KEYS} | {"impl": impl, "event": event, "advert_ms": advert_ms,
                                         "run": run, "error": str(exc).splitlines()[0]}
    return row


def table(rows: list[dict]) -> str:
    """median/min/max outage per (impl, event, advert) beside the RFC Master_Down_Interval."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["event"], r["advert_ms"], r["impl"]), []).append(r)
    lines = [f"{'event':9} {'advert':>7} {'impl':11} {'runs':>4} {'median':>8} {'min':>8} {'max':>8}"
             f" {'MDI':>7} {'lost':>5}"]
    for (event, adv, impl), rs in sorted(groups.items()):
        vals = [r["outage_ms"] for r in rs if r["outage_ms"] is not None]
        mdi = next((r["mdi_ms"] for r in rs if r["mdi_ms"] is not None), None)
        lost = [r["lost"] for r in rs if r["lost"] is not None]
        fmt = (lambda v: f"{v:8.1f}")
        stats = (fmt(statistics.median(vals)) + " " + fmt(min(vals)) + " " + fmt(max(vals))) if vals \
            else f"{'-':>8} {'-':>8} {'-':>8}"
        lines.append(f"{event:9} {adv:>5}ms {impl:11} {len(vals):>2}/{len(rs):<1} {stats} "
                     f"{(f'{mdi:7.0f}' if mdi else '      -')} "
                     f"{(statistics.median(lost) if lost else '-'):>5}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run the plan, print the table, write --json; exit 0 when every run produced a figure."""
    impl_list = [s for s in args.impl.split(",") if s]
    events = [s for s in args.event.split(",") if s]
    adverts = [parse_duration_ms(s) for s in args.advert.split(",") if s]
    out = Path(args.out) if args.out else None
    rows = []
    for n, adv, event, impl in plan(impl_list, events, adverts, args.runs):
        row = one(impl, event, adv, n, args.topo, out)
        print(f"run {n} {impl:10} {event:8} {adv:5} ms: "
              + (f"{row['outage_ms']:.1f} ms" if row["outage_ms"] is not None
                 else f"no figure ({row.get('error', 'no new master')})"), flush=True)
        rows.append(row)
    print(table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["outage_ms"] is not None for r in rows) else 1
