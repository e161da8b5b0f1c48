#!/usr/bin/env python3
"""Write the interop matrix of docs/interop.md from an interop run's junit XML.

    pytest tests/interop --junitxml=lab-out/interop-junit.xml
    python tools/interop_doc.py --junit lab-out/interop-junit.xml            # rewrite the matrix
    python tools/interop_doc.py --junit lab-out/interop-junit.xml --check    # exit 1 if stale

Each test marked with a matrix row (`tests/interop/interop_util.row`: peer, family, mode, version,
configuration, priority order, masters, what it checks) carries that row and the peer's version as
junit properties (`tests/interop/conftest.py`). The tool writes one table line per such test with
the run's outcome: "one master?" is yes (or no: a split brain the test demonstrates) only when the
test passed; a failed or skipped test proves nothing and says so. Only the part of the doc between
the two marker lines is generated; the rest (configuration advice, peer bugs) is written by hand.

Exit codes: 0 written / up to date, 1 --check found a difference, 2 unusable input.
"""
from __future__ import annotations

import argparse
import difflib
import json
import pathlib
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "interop.md"
BEGIN = "<!-- interop-matrix: begin (tools/interop_doc.py writes this part from the interop run) -->"
END = "<!-- interop-matrix: end -->"
PEER_NAMES = {"keepalived": "keepalived", "frr": "FRR vrrpd"}
ORDER_RANK = {"vmacd higher": 0, "peer higher": 1}


class InputError(Exception):
    """The junit file or the doc cannot be used (exit 2)."""


@dataclass(frozen=True)
class Row:
    test: str              # "test_ipv6_lists.py::test_x[vmacd]"
    outcome: str           # passed | failed | error | skipped
    detail: str            # skip reason or failure message, first line
    peer: str
    peer_version: str
    family: int
    mode: str
    version: str
    config: str
    order: str
    masters: int
    checks: str

    @property
    def key(self) -> tuple:
        return (self.peer, self.family, self.mode, self.version, self.config,
                ORDER_RANK.get(self.order, 9), self.test)

    @property
    def one_master(self) -> str:
        if self.outcome != "passed":
            return "unproven"
        return "yes" if self.masters == 1 else "**no**: split brain, shown"


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag in ("failure", "error", "skipped"):
        el = case.find(tag)
        if el is not None:
            text = (el.get("message") or el.text or "").strip().splitlines()
            return ("failed" if tag == "failure" else tag), (text[0] if text else "")
    return "passed", ""


def read_junit(path: pathlib.Path) -> list[Row]:
    """The matrix rows of a junit XML file (testcases without a matrix property are ignored)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(f"cannot read junit XML {path}: {exc}") from None
    rows = []
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "interop_matrix" not in props:
            continue
        try:
            facts = json.loads(props["interop_matrix"])
        except ValueError as exc:
            raise InputError(f"{path}: testcase {case.get('name')}: bad interop_matrix: {exc}") from None
        module = (case.get("classname") or "").rpartition(".")[2]
        outcome, detail = _outcome(case)
        try:
            rows.append(Row(test=f"{module}.py::{case.get('name')}", outcome=outcome, detail=detail,
                            peer_version=props.get("peer_version", facts["peer"]), **facts))
        except TypeError as exc:
            raise InputError(f"{path}: testcase {case.get('name')}: {exc}") from None
    if not rows:
        raise InputError(f"{path} has no testcase with an interop_matrix property: was it written "
                         "by `pytest tests/interop --junitxml=...`?")
    return sorted(rows, key=lambda r: r.key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row]) -> str:
    """The generated part, markers included."""
    versions = sorted({r.peer_version for r in rows})
    counts = {o: sum(r.outcome == o for r in rows) for o in ("passed", "failed", "error", "skipped")}
    out = [BEGIN, "", "## Result matrix", "",
           f"Generated from the interop run's outcomes ({', '.join(versions)}; "
           + ", ".join(f"{n} {o}" for o, n in counts.items() if n) + "). "
           "*One master?* is what the test proved, only when it passed: **no** rows are split "
           "brains the test demonstrates on purpose, with the evidence that makes them visible. "
           "*vmacd higher*: vmacd priority 200, the peer 100; *peer higher*: the reverse.", "",
           "| # | peer | family | mode | version | configuration | priority | one master? | outcome | test |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        outcome = r.outcome + (f": {r.detail}" if r.detail and r.outcome != "passed" else "")
        out.append(f"| {i} | {PEER_NAMES.get(r.peer, r.peer)} | IPv{r.family} | {r.mode} | "
                   f"{_cell(r.version)} | {_cell(r.config)} | {r.order} | {r.one_master} | "
                   f"{_cell(outcome)} | `{r.test}` |")
    out += ["", "What each test checks:", ""]
    out += [f"{i}. {_cell(r.checks)}" for i, r in enumerate(rows, 1)]
    out += ["", END]
    return "\n".join(out)


def splice(doc: str, block: str) -> str:
    """`doc` with the text between the markers replaced by `block`."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise InputError(f"the doc has no '{BEGIN}' ... '{END}' block")
    return doc[:start] + block + doc[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--junit", required=True, type=pathlib.Path, help="junit XML of the interop run")
    ap.add_argument("--doc", type=pathlib.Path, default=DOC, help="the doc to update (docs/interop.md)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the doc differs from the run")
    args = ap.parse_args(argv)
    try:
        rows = read_junit(args.junit)
        try:
            doc = args.doc.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {args.doc}: {exc.strerror}") from None
        new = splice(doc, render(rows))
    except InputError as exc:
        print(f"interop_doc: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new == doc:
            print(f"{args.doc}: the matrix matches the run ({len(rows)} rows)")
            return 0
        sys.stdout.writelines(difflib.unified_diff(doc.splitlines(True), new.splitlines(True),
                                                   f"{args.doc} (committed)", "from the run"))
        print(f"{args.doc}: the matrix differs from the run; rewrite it with "
              f"tools/interop_doc.py --junit {args.junit}", file=sys.stderr)
        return 1
    args.doc.write_text(new, encoding="utf-8")
    print(f"{args.doc}: matrix written ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
