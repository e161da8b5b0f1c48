"""``vmac-lab bench faults``: what each fault costs the client, per implementation, in one table.

Every (run, fault, impl) builds its own lab (``faultbed.Bed``: r1 master at priority 200, r2 backup
at 150, c1 probing the VIP every 5 ms), runs one case of ``faultcases`` and yields one row per
measured window; implementations are interleaved run by run, as in ``bench failover``.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

from .faultbed import Bed
from .faultcases import CASES, UNSUPPORTED, Options
from .record import rfc_bounds
from .util import log, parse_duration_ms

ORDER = {"vmacd": 0, "keepalived": 1, "frr": 2}
#: per fault: the case figures the table shows (JSON key, label, how runs combine: the median,
#: "sum" for rare events a median would hide, "mean" for rates, "max" for a worst case)
FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "loss10": (("false_per_10min", "false/10min", "mean"),
               ("takeovers_per_10min", "takeovers/10min", "mean"),
               ("wire_takeovers_per_10min", "on wire", "mean"),
               ("rfc_takeovers_per_10min", "RFC expects", "median")),
    "partition": (("both_master", "split", ""), ("two_masters_ms", "2 masters ms", "median"),
                  ("yield_ms", "yield after cross ms", "max"), ("garps", "winner GARPs", "median"),
                  ("lost_heal", "lost at heal", "median")),
    "freeze-master": (("takeover_ms", "takeover ms", "median"),
                      ("two_masters_ms", "2 masters ms", "max"),
                      ("lost_return", "lost at return", "median"), ("winner", "master", "")),
    "freeze-backup": (("takeovers", "takeovers", "sum"), ("backup_adverts", "backup adverts", "sum")),
    "restart-term": (("lost_per_restart", "lost/restart", "median"),
                     ("outage_per_restart_ms", "gap/restart ms", "median"),
                     ("back_ms", "master again ms", "median")),
    "replug": (("back", "back", ""), ("back_ms", "back ms", "median"), ("master_end", "master", ""),
               ("lost_unplug", "lost unplug", "median"), ("lost_replug", "lost replug", "median")),
    "reload": (("wire_as_intended", "wire as intended", ""), ("on_wire", "last advert", ""),
               ("states_after", "r1/r2 after", "")),
    "flood": (("pps", "pps", "median"), ("max_gap_ms", "master's max advert gap ms", "max")),
}
FIGURES["loss30"] = FIGURES["loss10"]
FIGURES["restart-kill"] = FIGURES["restart-term"]


def duration_s(text: str) -> float:
    """``"10m"``, ``"90s"``, ``"500ms"`` or a number of seconds -> seconds."""
    s = text.strip().lower()
    try:
        if s.endswith("m") and not s.endswith("ms"):
            return float(s[:-1]) * 60
        if s.endswith("s"):
            return parse_duration_ms(s) / 1000
        return float(s)
    except ValueError:
        raise SystemExit(f"bench faults: --duration: not a duration: {text!r} "
                         "(e.g. 10m, 90s)") from None


def plan(impls: list[str], faults: list[str], runs: int) -> list[tuple[int, str, str]]:
    """(run, fault, impl) in execution order: the impl varies fastest."""
    return [(n, f, i) for n in range(runs) for f in faults for i in impls]


def one(impl: str, fault: str, run: int, advert_ms: int, opt: Options) -> list[dict]:
    """Every row of one case on a fresh bed; an ``error`` row when it produced none."""
    base = {"impl": impl, "fault": fault, "run": run, "advert_ms": advert_ms,
            "mdi_ms": round(rfc_bounds(advert_ms, 150)[0], 1)}
    if (impl, fault) in UNSUPPORTED:
        return [base | {"case": fault, "skipped": UNSUPPORTED[(impl, fault)]}]
    try:
        with Bed(impl, advert_ms, rx_only=fault == "flood") as bed:
            base["prefix"] = bed.lab.prefix
            rows = CASES[fault](bed, opt)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
        log.warning("%s %s run %d: %s", impl, fault, run, exc)
        return [base | {"case": fault, "error": str(exc).splitlines()[0]}]
    return [base | r for r in rows]


def _num(v: float) -> str:
    return f"{v:.1f}" if isinstance(v, float) and not v.is_integer() else f"{int(v)}"


def _fmt(vals: list, how: str = "median") -> str:
    """Runs combined: booleans as true/runs, strings as they are (with counts when they differ),
    numbers by *how* (median, mean, sum, max); the label says which unless it is the median."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if all(isinstance(v, bool) for v in vals):
        return f"{sum(vals)}/{len(vals)}"
    if all(isinstance(v, (int, float)) for v in vals):
        agg = {"mean": statistics.fmean, "sum": sum, "max": max}.get(how, statistics.median)
        return _num(agg(vals)) + (f" ({how})" if how in ("mean", "sum", "max") else "")
    counts = Counter(str(v) for v in vals).most_common()
    return counts[0][0] if len(counts) == 1 else " | ".join(f"{v} ({n})" for v, n in counts)


def _trans(rows: list[dict]) -> str:
    nodes = sorted({n for r in rows for n in r.get("transitions") or {}})
    return "/".join(_fmt([(r.get("transitions") or {}).get(n) for r in rows]) for n in nodes) or "-"


def _held(rows: list[dict]) -> str:
    marks = [r["held"] for r in rows if r.get("held") is not None]
    if not marks:
        return "-"
    bad = marks.count(False)
    return f"held {len(marks)}/{len(marks)}" if not bad else f"FAILED {bad}/{len(marks)}"


def table(rows: list[dict], faults: list[str] | None = None) -> str:
    """One line per (case, impl): medians over the runs of the client's lost probes and longest
    outage, transitions per router (r1/r2), the invariant (held n/n, or FAILED in k of n runs) and
    the case's figures."""
    groups: dict[tuple, list[dict]] = {}
    seen: dict[str, int] = {}                  # cases in the order they first ran
    for r in rows:
        groups.setdefault((r["fault"], r["case"], r["impl"]), []).append(r)
        seen.setdefault(r["case"], len(seen))
    forder = {f: i for i, f in enumerate(faults or list(CASES))}
    lines = [(f"{'case':24} {'impl':11} {'runs':>5} {'lost':>6} {'gap ms':>7} {'trans r1/r2':>11}"
              f"  {'invariant':14} figures (median unless marked)")]
    invariants: dict[str, str] = {}
    for (fault, case, impl), rs in sorted(groups.items(), key=lambda kv: (
            forder.get(kv[0][0], 99), seen[kv[0][1]], ORDER.get(kv[0][2], 9), kv[0][2])):
        ok = [r for r in rs if not r.get("error") and not r.get("skipped")]
        if not ok:
            why = rs[0].get("skipped") or rs[0].get("error")
            lines.append(f"{case:24} {impl:11} {0:>2}/{len(rs):<2} n/a ({why})")
            continue
        for r in ok:
            if r.get("invariant"):
                invariants.setdefault(case, r["invariant"])
        figs = ", ".join(f"{label} {_fmt([r.get(key) for r in ok], how)}"
                         for key, label, how in FIGURES.get(fault, ()))
        lines.append(f"{case:24} {impl:11} {len(ok):>2}/{len(rs):<2} "
                     f"{_fmt([r['lost'] for r in ok]):>6} {_fmt([r['outage_ms'] for r in ok]):>7} "
                     f"{_trans(ok):>11}  {_held(ok):14} {figs}")
    if invariants:
        lines += ["", "invariants:"] + [f"  {c}: {t}" for c, t in invariants.items()]
    return "\n".join(lines)


def _progress(row: dict) -> str:
    head = f"run {row['run']} {row['impl']:10} {row['case']:24}"
    if row.get("skipped") or row.get("error"):
        return f"{head} no figure ({row.get('skipped') or row.get('error')})"
    held = {None: "", True: ", invariant held", False: ", INVARIANT FAILED"}[row.get("held")]
    return (f"{head} lost {row['lost']}, gap {row['outage_ms']} ms, transitions "
            f"{row['transitions']}{held}")


def main(args: argparse.Namespace) -> int:
    """Run the plan, print the table, write --json; exit 0 when every row produced a figure."""
    impl_list = [s for s in args.impl.split(",") if s]
    faults = [s for s in args.fault.split(",") if s]
    unknown = [f for f in faults if f not in CASES]
    if unknown:
        raise SystemExit(f"bench faults: unknown fault {', '.join(unknown)} "
                         f"(known: {', '.join(CASES)})")
    if args.runs < 1 or args.restarts < 1:
        raise SystemExit("bench faults: --runs and --restarts must be at least 1")
    opt = Options(duration_s=duration_s(args.duration), restarts=args.restarts,
                  flood_pps=args.flood_pps, flood_s=duration_s(args.flood_duration))
    advert = parse_duration_ms(args.advert)
    rows: list[dict] = []
    for n, fault, impl in plan(impl_list, faults, args.runs):
        for row in one(impl, fault, n, advert, opt):
            print(_progress(row), flush=True)
            rows.append(row)
    print(table(rows, faults))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(not r.get("error") for r in rows) else 1
