"""The fuzzing engine: deterministic, seeded, structure-aware; no coverage feedback.

A target generates one input from a `random.Random` seeded by (seed, target, index), checks it
against its oracle and returns the outcome labels (a drop reason, a config error path, ...).
Input `index` of a run is therefore reproducible on its own, on any machine, in any order, and
a run can be split over processes without changing what is tested.

Anything the oracle refuses (`Finding`) or any exception the target does not document is a
finding: the first of each kind is written as a JSON reproducer (the input itself, not only its
index) that `run.py --replay FILE` runs again.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import itertools
import json
import os
import random
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

SLOW_INPUT_S = 5.0       # one input taking longer than this is a finding (a hang, a blow-up)
MAX_KEPT_PER_KIND = 1    # reproducers written per distinct finding kind


class Finding(Exception):
    """An oracle refused the outcome of an input; `kind` groups findings of the same cause."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def expect(cond: object, kind: str, detail: str = "") -> None:
    if not cond:
        raise Finding(kind, detail)


class Target(Protocol):
    name: str

    def generate(self, rng: random.Random) -> Any: ...

    def check(self, case: Any) -> Iterable[str]: ...

    def dump(self, case: Any) -> dict: ...

    def load(self, data: dict) -> Any: ...

    # optional: close(self) -> None, called when a run of the target ends


def case_rng(seed: int, target: str, index: int) -> random.Random:
    return random.Random(f"{seed}/{target}/{index}")


def run_case(target: Target, case: Any) -> tuple[list[str], dict | None]:
    """(outcome labels, None) or ([], finding) for one input."""
    t0 = time.perf_counter()
    try:
        labels = list(target.check(case))
    except Finding as exc:
        return [], {"kind": exc.kind, "detail": exc.detail, "traceback": traceback.format_exc()}
    except Exception as exc:  # noqa: BLE001 - every undocumented exception is a finding
        where, line = _where(exc)
        return [], {"kind": f"exception {type(exc).__name__} in {where}",
                    "detail": f"line {line}: {str(exc)[:2000]}", "traceback": traceback.format_exc()}
    took = time.perf_counter() - t0
    if took > SLOW_INPUT_S:
        return [], {"kind": "slow input", "detail": f"{took:.1f} s for one input", "traceback": ""}
    return labels, None


def _where(exc: BaseException) -> tuple[str, int]:
    """The innermost frame inside vmacd (else the innermost one): ("file (function)", line).
    The line is left out of the finding's kind so that kinds survive edits of the file."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/vmacd/" in f.filename] or frames
    if not ours:
        return "?", 0
    f = ours[-1]
    return f"{f.filename.rsplit('/vmacd/', 1)[-1]} ({f.name})", f.lineno or 0


@dataclass
class Chunk:
    """What one process found in indices [start, stop) of one target."""

    target: str
    inputs: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    findings: dict[str, dict] = field(default_factory=dict)     # kind -> first reproducer
    counts: collections.Counter = field(default_factory=collections.Counter)  # kind -> how many
    slowest: float = 0.0


def run_range(target: Target, seed: int, start: int, stop: int) -> Chunk:
    chunk = Chunk(target.name)
    t_start = time.perf_counter()
    for index in range(start, stop):
        t0 = time.perf_counter()
        try:
            case = target.generate(case_rng(seed, target.name, index))
        except Exception as exc:  # noqa: BLE001 - a generator bug must not pass for a clean run
            chunk.counts[f"generator {type(exc).__name__}"] += 1
            chunk.findings.setdefault(f"generator {type(exc).__name__}", {
                "kind": f"generator {type(exc).__name__}", "detail": str(exc),
                "traceback": traceback.format_exc(), "index": index, "case": None})
            continue
        labels, finding = run_case(target, case)
        chunk.slowest = max(chunk.slowest, time.perf_counter() - t0)
        chunk.outcomes.update(labels)
        if finding is not None:
            chunk.counts[finding["kind"]] += 1
            if finding["kind"] not in chunk.findings:
                finding.update(index=index, case=target.dump(case))
                chunk.findings[finding["kind"]] = finding
    chunk.inputs = stop - start
    chunk.seconds = time.perf_counter() - t_start
    close = getattr(target, "close", None)      # a target may hold files (config: key files)
    if close is not None:
        close()
    return chunk


def merge(chunks: list[Chunk]) -> Chunk:
    total = Chunk(chunks[0].target)
    for c in chunks:
        total.inputs += c.inputs
        total.seconds = max(total.seconds, c.seconds)
        total.outcomes.update(c.outcomes)
        total.counts.update(c.counts)
        total.slowest = max(total.slowest, c.slowest)
        for kind, f in c.findings.items():
            if kind not in total.findings or f["index"] < total.findings[kind]["index"]:
                total.findings[kind] = f
    return total


def _run_range_by_name(name: str, seed: int, start: int, stop: int) -> Chunk:
    from fuzztargets import TARGETS  # the worker process builds its own targets
    return run_range(TARGETS[name](), seed, start, stop)


def run_target(name: str, seed: int, inputs: int, jobs: int = 1) -> Chunk:
    """Run `inputs` inputs of target `name`, split over `jobs` processes; the merged result."""
    if jobs <= 1 or inputs < 1000:
        from fuzztargets import TARGETS
        return run_range(TARGETS[name](), seed, 0, inputs)
    bounds = [inputs * i // jobs for i in range(jobs + 1)]
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futs = [pool.submit(_run_range_by_name, name, seed, a, b) for a, b in itertools.pairwise(bounds)]
        chunks = [f.result() for f in futs]
    total = merge(chunks)
    total.seconds = time.perf_counter() - t0
    return total


def write_reproducer(out_dir: str, seed: int, target: str, finding: dict, count: int) -> str:
    os.makedirs(out_dir, exist_ok=True)
    digest = hashlib.sha1(finding["kind"].encode()).hexdigest()[:10]
    path = os.path.join(out_dir, f"{target}-{digest}.json")
    doc = {"target": target, "seed": seed, "index": finding["index"], "kind": finding["kind"],
           "detail": finding["detail"], "occurrences": count, "case": finding["case"],
           "traceback": finding["traceback"]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=True)
        fh.write("\n")
    return path


def replay(path: str) -> tuple[Target, Any, list[str], dict | None]:
    """Run a reproducer file again: (target, case, labels, finding or None)."""
    from fuzztargets import TARGETS
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    target = TARGETS[doc["target"]]()
    if doc.get("case") is None:   # a generator failure: regenerate from the index
        case = target.generate(case_rng(doc["seed"], doc["target"], doc["index"]))
    else:
        case = target.load(doc["case"])
    labels, finding = run_case(target, case)
    return target, case, labels, finding
