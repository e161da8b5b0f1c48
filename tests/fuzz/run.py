"""`make fuzz`: run every fuzz target, report, write reproducers, exit 1 on any finding.

    python tests/fuzz/run.py                      the full run (over 10^6 inputs)
    python tests/fuzz/run.py --scale 0.1 --jobs 2 a tenth of it on two processes
    python tests/fuzz/run.py --target config --inputs 5000 --seed 7
    python tests/fuzz/run.py --replay lab-out/fuzz/config-1a2b3c4d5e.json
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# the harness's own modules, found through the sys.path entry above (run as a script)
import fuzzcore  # noqa: E402
from fuzztargets import FULL, TARGETS  # noqa: E402

DEFAULT_OUT = str(HERE.parents[1] / "lab-out" / "fuzz")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="only these (repeatable)")
    ap.add_argument("--inputs", type=int, help="inputs per target (default: the full-run table)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the full-run table")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=DEFAULT_OUT, help="where reproducers and summary.json go")
    ap.add_argument("--replay", metavar="FILE", help="run one reproducer again")
    args = ap.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    names = args.target or list(TARGETS)
    plan = {n: args.inputs if args.inputs is not None else max(1, int(FULL[n] * args.scale)) for n in names}
    return run(plan, args.seed, args.jobs, args.out)


def run(plan: dict[str, int], seed: int, jobs: int, out: str) -> int:
    print(f"fuzz: seed {seed}, {jobs} process(es), {sum(plan.values()):,} inputs")
    print(f"{'target':<18} {'inputs':>9} {'seconds':>8} {'inputs/s':>9} {'outcomes':>8} {'findings':>8}")
    t0, results, found = time.perf_counter(), {}, []
    for name, n in plan.items():
        r = fuzzcore.run_target(name, seed, n, jobs)
        results[name] = r
        nfind = sum(r.counts.values())
        print(f"{name:<18} {r.inputs:>9,} {r.seconds:>8.1f} {r.inputs / max(r.seconds, 1e-9):>9,.0f} "
              f"{len(r.outcomes):>8} {nfind:>8}", flush=True)
        for kind, f in sorted(r.findings.items()):
            path = fuzzcore.write_reproducer(out, seed, name, f, r.counts[kind])
            found.append((name, kind, r.counts[kind], path, f))
    wall = time.perf_counter() - t0
    total = sum(r.inputs for r in results.values())
    print(f"{'total':<18} {total:>9,} {wall:>8.1f} {total / wall:>9,.0f}")
    for name, r in results.items():
        top = ", ".join(f"{k} ({v:,})" for k, v in r.outcomes.most_common(8))
        print(f"\n{name}: {len(r.outcomes)} distinct outcomes; "
              f"slowest input {r.slowest * 1000:.1f} ms\n  {top}")
    _summary(out, seed, jobs, wall, results)
    if not found:
        print(f"\nfuzz: 0 findings in {total:,} inputs (summary in {out}/summary.json)")
        return 0
    print(f"\nfuzz: {len(found)} finding(s)")
    for name, kind, count, path, f in found:
        print(f"\n== {name}: {kind} ({count:,} input(s); first: index {f['index']})\n{f['detail'][:1500]}")
        print(f"input: {json.dumps(f['case'], ensure_ascii=True)[:3000]}")
        print(f"reproducer: {path}\n  replay: python tests/fuzz/run.py --replay {path}")
    return 1


def _summary(out: str, seed: int, jobs: int, wall: float, results: dict) -> None:
    os.makedirs(out, exist_ok=True)
    doc = {"seed": seed, "jobs": jobs, "seconds": round(wall, 1), "targets": {
        name: {"inputs": r.inputs, "seconds": round(r.seconds, 2),
               "inputs_per_s": round(r.inputs / max(r.seconds, 1e-9)),
               "findings": dict(r.counts), "outcomes": dict(r.outcomes.most_common())}
        for name, r in results.items()}}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


def replay(path: str) -> int:
    target, case, labels, finding = fuzzcore.replay(path)
    print(f"target {target.name}\ninput: {json.dumps(target.dump(case), ensure_ascii=True)[:3000]}")
    if finding is None:
        print(f"no finding: outcome {labels}")
        return 0
    print(f"finding: {finding['kind']}\n{finding['detail']}\n{finding['traceback']}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
