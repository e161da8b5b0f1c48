"""``vmac-lab bench failover``: every impl x event x advert, implementations interleaved run by run."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from . import scenario, timeline
from .util import log, parse_duration_ms

KEYS = ("impl", "event", "advert_ms", "run", "outage_ms", "lost", "mdi_ms", "skew_ms", "old_master",
        "new_master")
#: beyond the documented record keys: takeover_ms = new master's state change (its first advert
#: on the wire, else its state report) minus the fault; notify_ms = the state report; expected_ms
#: = when RFC 9568 says the backup takes over (last advert heard + MDI; priority 0 + Skew_Time
#: for term, and for a kill that sends one); old_vmac_after = frames the old master's box sent from
#: the vMAC after the new master's first advertisement (a dead box fighting over the vMAC)
EXTRA = ("takeover_ms", "notify_ms", "expected_ms", "old_vmac_after")


def plan(impls: list[str], events: list[str], adverts: list[int], runs: int) -> list[tuple]:
    """(run, advert_ms, event, impl) in execution order: the impl varies fastest."""
    return [(n, a, e, i) for n in range(runs) for a in adverts for e in events for i in impls]


def one(impl: str, event: str, advert_ms: int, run: int, topo: str, out: Path | None) -> dict:
    """One run as a bench row; outage_ms None (and ``error``) when it produced no figure."""
    # the baseline holds at least one advertisement of the master (late vs RFC needs the last
    # one before the fault), the tail one interval of the new master
    sc = scenario.Scenario(topology=topo, impl=impl, event=event, advert_ms=advert_ms, run=run,
                           before_ms=max(300, advert_ms * 3 // 2), after_ms=max(500, advert_ms),
                           timeout_s=max(10.0, advert_ms * 6 / 1000))
    try:
        rec = scenario.run(sc, out)
        row = {k: rec.get(k) for k in KEYS}
        a = timeline.analyze(rec)
        row.update(takeover_ms=a["takeover_ms"], notify_ms=a["notify_ms"],
                   expected_ms=a["expected_ms"],
                   old_vmac_after=rec.get("meta", {}).get("old_vmac_after"),
                   record=rec.get("meta", {}).get("json"))
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop the others
        log.warning("%s %s %s run %d: %s", impl, event, advert_ms, run, exc)
        row = dict.fromkeys(KEYS + EXTRA) | {"impl": impl, "event": event, "advert_ms": advert_ms,
                                         "run": run, "error": str(exc).splitlines()[0]}
    return row


def _med(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _max(rows: list[dict], key: str) -> str:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return str(max(vals)) if vals else "-"


def table(rows: list[dict]) -> str:
    """Per (event, advert, impl): outage median/min/max beside the RFC bounds, lost probes, takeover
    median, how late the takeover came against the RFC timer (median of takeover - expected), the
    median-outage ratio to keepalived's (same event and advert) and the most frames any run saw
    from the old master's vMAC after the new master's first advertisement."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["event"], r["advert_ms"], r["impl"]), []).append(r)
    ka = {(e, a): _med(rs, "outage_ms") for (e, a, i), rs in groups.items() if i == "keepalived"}
    lines = [(f"{'event':9} {'advert':>7} {'impl':11} {'runs':>5} {'median':>8} {'min':>8}"
              f" {'max':>8} {'MDI':>7} {'skew':>6} {'lost':>5} {'takeover':>9} {'late':>6}"
              f" {'vs keepalived':>13} {'old':>5}"),
             (f"{'':9} {'':>7} {'':11} {'':>5} {'outage ms (client-observed)':>26}"
              f" {'RFC ms':>14} {'med':>5} {'median ms':>9} {'vs RFC':>6} {'median outage':>13}"
              f" {'vMAC':>5}")]
    order = {"vmacd": 0, "keepalived": 1, "frr": 2}
    for (event, adv, impl), rs in sorted(groups.items(),
                                         key=lambda kv: (kv[0][0], -kv[0][1], order.get(kv[0][2], 9),
                                                         kv[0][2])):
        vals = [r["outage_ms"] for r in rs if r["outage_ms"] is not None]
        mdi = next((r["mdi_ms"] for r in rs if r.get("mdi_ms") is not None), None)
        skew = next((r["skew_ms"] for r in rs if r.get("skew_ms") is not None), None)
        lost = _med(rs, "lost")
        take = _med(rs, "takeover_ms")
        lates = [r["takeover_ms"] - r["expected_ms"] for r in rs
                 if r.get("takeover_ms") is not None and r.get("expected_ms") is not None]
        late = f"{statistics.median(lates):+6.1f}" if lates else f"{'-':>6}"
        fmt = (lambda v: f"{v:8.1f}")
        stats = (fmt(statistics.median(vals)) + " " + fmt(min(vals)) + " " + fmt(max(vals))) if vals \
            else f"{'-':>8} {'-':>8} {'-':>8}"
        base = ka.get((event, adv))
        if not vals or base is None:
            ratio = "-"
        elif base <= 0:
            ratio = "n/a (ka 0)"
        else:
            ratio = f"{statistics.median(vals) / base:.2f}x"
        lines.append(f"{event:9} {adv:>5}ms {impl:11} {len(vals):>2}/{len(rs):<2} {stats} "
                     f"{(f'{mdi:7.1f}' if mdi else '      -')} {(f'{skew:6.1f}' if skew else '     -')} "
                     f"{(f'{lost:5g}' if lost is not None else '    -')} "
                     f"{(f'{take:9.1f}' if take is not None else '        -')} {late} {ratio:>13} "
                     f"{_max(rs, 'old_vmac_after'):>5}")
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
        take = row.get("takeover_ms")
        print(f"run {n} {impl:10} {event:8} {adv:5} ms: "
              + (f"outage {row['outage_ms']:.1f} ms, lost {row['lost']}, takeover "
                 + (f"{take:.1f} ms" if take is not None else "-")
                 if row["outage_ms"] is not None
                 else f"no figure ({row.get('error', 'no new master')})"), flush=True)
        rows.append(row)
    print(table(rows))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["outage_ms"] is not None for r in rows) else 1
