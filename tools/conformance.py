#!/usr/bin/env python3
"""Generate docs/conformance.md from the outcomes of the tests carrying rfc marks.

    pytest tests --rfc-outcomes=lab-out/rfc-outcomes.json      # a complete run records them
    python tools/conformance.py [--outcomes lab-out/rfc-outcomes.json] [--out docs/conformance.md]
    python tools/conformance.py --check    # exit 1 if the committed doc disagrees with the outcomes

A requirement (docs/rfc9568-requirements.md) is tested "both ways" when a passing test shows it
holds and a different passing test shows the opposite refused (two parameters of one test
function are one test); "one way" when only one side has a passing test; "not yet" when neither
has. Skipped, failing, erroring and xfailed tests count for nothing. Rows that do not bind vmacd
(n/a, with the reason) and its deliberate departures (with the switch back to the RFC) are
decided here. An outcome file from a partial run (tests/rfcmarks.py says when) can neither
generate nor check the doc: --check then says so and exits 0.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import rfcmarks  # noqa: E402  (tests/ holds the mark conventions shared with the plugin)

DEFAULT_OUTCOMES = ROOT / "lab-out" / "rfc-outcomes.json"

#: Rows that do not bind vmacd, and why (decided per row; a test on such a row still counts).
NOT_APPLICABLE = {
    "9568-5.1.1.2-2": "routing is the kernel's: Linux never forwards 224.0.0.0/24; vmacd relays nothing",
    "9568-5.1.2.2-2": "routing is the kernel's: Linux never forwards link-scope ff02::/16; vmacd "
                      "relays nothing",
    "9568-6.4.3-5": "vmacd sends no router advertisements: run radvd on the vMAC device (started as a "
                    "resource on becoming master); the vMAC is down on backups, so radvd there is silent",
    "9568-6.4.3-7": "forwarding is the kernel's (ip_forward); vmacd only brings the vMAC device up",
    "9568-8.1.2-6": "operator advice; the docs' examples manage boxes by their own addresses",
    "9568-8.1.3-1": "vmacd runs no proxy ARP",
    "9568-8.2.1-1": "ICMPv6 redirects are sent by the kernel, not by vmacd",
    "9568-8.2.2-3": "NS for hosts are sent by the kernel's neighbour code, not by vmacd",
    "9568-8.2.2-4": "as 8.2.2-3",
    "9568-8.2.3-1": "RA content is radvd's configuration, outside vmacd",
    "9568-8.2.3-2": "RA content is radvd's configuration, outside vmacd",
    "9568-8.2.4-1": "neighbour cache updates are the kernel's (accept_untracked_na)",
    "9568-8.3.2-1": "operator advice (one owner per VRID); the runtime side is 8.3.2-2",
    "9568-8.3.2-3": "operator advice on spacing priorities",
    "9568-8.4.2-1": "vmacd does not offer the mixed v2/v3 mode",
    "9568-8.4.2-2": "vmacd does not offer the mixed v2/v3 mode (a MAY)",
    "9568-8.4.2-3": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-4": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-6": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-7": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2.1.1-1": "mixed-mode deployment advice; vmacd does not offer the mode",
    "9568-9-1": "deployment advice (RFC 9099 §2.3) for the operator",
}

#: Deliberate departures (README, docs/config.md): id -> (what vmacd does by default or when
#: enabled, the switch back to the RFC).
DEPARTED = {
    "9568-5.2.8-2": ("IPv4 v3 checksum sent with the pseudo-header by default (keepalived/FRR)",
                     "v3_checksum_pseudoheader = false"),
    "9568-6.4.3-10": ("make-before-break: priority 0 at once, VIPs kept until the successor is "
                      "heard (bounded)", 'graceful_handover = "rfc"'),
    "9568-7.2-3": ("opt-in `vmac = false` sends from the physical MAC", "vmac = true (default)"),
    "9568-7.2-7": ("opt-in `unicast_peers` sends unicast", "unicast_peers = [] (default)"),
    "9568-5.1.1.2-1": ("opt-in `unicast_peers` sends unicast", "unicast_peers = [] (default)"),
    "9568-6.1-9": ("Accept_Mode on by default: the master answers traffic to its VIPs, as every "
                   "service behind a cluster IP needs (keepalived, FRR)", "accept = false"),
    "9568-7.1-19": ("IPv6 adverts whose first address is not link-local (keepalived's and FRR's "
                    "usual list) are accepted and marked by default", "ipv6_link_local_first_strict = true"),
    "9568-5.2.9-1": ("opt-in `ipv6_link_local_first = false` sends an IPv6 list without the "
                     "link-local (keepalived's / FRR's)", "ipv6_link_local_first = true (default)"),
    "9568-6.1-3": ("opt-in `ipv6_link_local_first = false` accepts such a configured list",
                   "ipv6_link_local_first = true (default)"),
}

SHOWN = 4          # tests listed per cell; the rest are counted


class OutcomeError(ValueError):
    """The outcome file cannot be used (unreadable, other format, unknown ids, partial run)."""


@dataclass
class Outcomes:
    """What tests/rfcmarks.py recorded: per node id, the outcome and the (id, way) marks."""

    complete: bool
    partial_because: list[str]
    tests: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: pathlib.Path) -> Outcomes:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutcomeError(f"cannot read the outcome file {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != rfcmarks.FORMAT:
            raise OutcomeError(f"{path}: not an rfc outcome file of format {rfcmarks.FORMAT}")
        tests = {nodeid: (t["outcome"], [(i, w) for i, w in t["rfc"]])
                 for nodeid, t in raw["tests"].items()}
        return cls(bool(raw["complete"]), list(raw["partial_because"]), tests)


def function_of(nodeid: str) -> str:
    """The test function of a node id: parameters stripped, so that its cases count as one."""
    return nodeid.split("[", 1)[0]


@dataclass
class Row:
    """The passing evidence for one requirement: test functions per way."""

    holds: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    def tested(self) -> str:
        if any(h != r for h in self.holds for r in self.refused):
            return "both ways"
        if self.holds and self.refused:
            return "one way (holds and refused in one test)"
        if self.holds or self.refused:
            return f"one way ({'holds' if self.holds else 'refused'})"
        return ""


def evidence(outcomes: Outcomes) -> dict[str, Row]:
    rows: dict[str, Row] = collections.defaultdict(Row)
    for nodeid, (outcome, marks) in outcomes.tests.items():
        if outcome != "passed":
            continue
        for req_id, way in marks:
            getattr(rows[req_id], way).add(function_of(nodeid))
    return rows


def status(row: Row, req_id: str) -> str:
    tested = row.tested()
    if req_id in DEPARTED:
        return f"departed; {tested or 'not yet tested'}"
    if req_id in NOT_APPLICABLE:
        return f"n/a{'; ' + tested if tested else ''}"
    return tested or "not yet"


def _cell(functions: set[str]) -> str:
    names = sorted({f.split("::")[-1] for f in functions})
    more = f" +{len(names) - SHOWN}" if len(names) > SHOWN else ""
    return ", ".join(f"`{n}`" for n in names[:SHOWN]) + more


def render(reqs: list[rfcmarks.Requirement], outcomes: Outcomes) -> str:
    known = {r.req_id for r in reqs}
    unknown = sorted({i for _, marks in outcomes.tests.values() for i, _ in marks} - known)
    if unknown:
        raise OutcomeError(f"marks with ids that are not requirement rows: {', '.join(unknown)}")
    rows = evidence(outcomes)
    counts: collections.Counter[str] = collections.Counter()
    body: list[str] = []
    section = None
    for r in reqs:
        if r.section != section:
            section = r.section
            body += ["", f"## {section}", "", "| id | level | status | holds | refused |",
                     "|---|---|---|---|---|"]
        row = rows.get(r.req_id, Row())
        st = status(row, r.req_id)
        counts[st.split(";")[0].split(" (")[0]] += 1
        body.append(f"| {r.req_id} | {r.level} | {st} | {_cell(row.holds)} | {_cell(row.refused)} |")
    lines = [
        "# RFC 9568 conformance", "",
        "Generated by `tools/conformance.py` from `docs/rfc9568-requirements.md` and the outcomes "
        "of the tests carrying `rfc` marks in a complete run of the suite (`make test`). "
        "Do not edit by hand.", "",
        "Status: **both ways** (a passing test shows the rule holds and a different passing test "
        "shows the opposite refused), **one way** (only one side has a passing test), **not yet**, "
        "**n/a** (reason below), **departed** (a deliberate departure, switchable back to the "
        "RFC). Skipped, failing and xfailed tests count for nothing: they are listed at the end. "
        "The holds and refused columns name the passing tests.", "",
        "| status | rows |", "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    lines += [f"| **total** | **{sum(counts.values())}** |"]
    lines += body
    lines += ["", "## Departures", "", "| id | vmacd | back to the RFC |", "|---|---|---|"]
    lines += [f"| {i} | {what} | `{switch}` |" for i, (what, switch) in DEPARTED.items()]
    lines += ["", "## Not applicable", "", "| id | reason |", "|---|---|"]
    lines += [f"| {i} | {why} |" for i, why in NOT_APPLICABLE.items()]
    idle = sorted((nodeid, outcome, marks) for nodeid, (outcome, marks) in outcomes.tests.items()
                  if outcome != "passed")
    lines += ["", "## Marked tests that did not pass (not counted)", ""]
    if idle:
        lines += ["| test | outcome | marks |", "|---|---|---|"]
        lines += [f"| `{nodeid}` | {outcome} | {', '.join(f'{i} {w}' for i, w in marks)} |"
                  for nodeid, outcome, marks in idle]
    else:
        lines += ["None."]
    return "\n".join(lines) + "\n"


def _rows(text: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| 9568-") and line.count("|") == 6}


def check(committed: str, fresh: str, out: pathlib.Path) -> int:
    if committed == fresh:
        print(f"{out} agrees with the test outcomes")
        return 0
    old, new = _rows(committed), _rows(fresh)
    print(f"{out} disagrees with the test outcomes; regenerate it with tools/conformance.py",
          file=sys.stderr)
    for req_id in sorted(old.keys() | new.keys()):
        if old.get(req_id) != new.get(req_id):
            print(f"  committed: {old.get(req_id, '(no row)')}\n  now:       "
                  f"{new.get(req_id, '(no row)')}", file=sys.stderr)
    other = [ln for ln in set(fresh.splitlines()) ^ set(committed.splitlines())
             if not ln.startswith("| 9568-")]
    for line in sorted(other)[:20]:
        print(f"  {'now' if line in fresh.splitlines() else 'committed'}: {line}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--requirements", type=pathlib.Path, default=rfcmarks.REQUIREMENTS)
    ap.add_argument("--outcomes", type=pathlib.Path, default=DEFAULT_OUTCOMES)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "conformance.md")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if --out disagrees with a generation from --outcomes")
    args = ap.parse_args(argv)
    try:
        outcomes = Outcomes.load(args.outcomes)
        if not outcomes.complete:
            why = "; ".join(outcomes.partial_because)
            if args.check:
                print(f"conformance: {args.outcomes} is from a partial run ({why}): not checked")
                return 0
            raise OutcomeError(f"{args.outcomes} is from a partial run ({why}); run every test "
                               "file that carries rfc marks")
        reqs = rfcmarks.requirements(args.requirements.read_text(encoding="utf-8"))
        text = render(reqs, outcomes)
    except OutcomeError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 1
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        return check(current, text, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(reqs)} requirements, {len(outcomes.tests)} marked tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
