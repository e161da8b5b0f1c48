"""RFC 9568 requirement marks, and the pytest plugin that records what the marked tests did.

Convention (docs/conformance.md is generated from the recorded outcomes by tools/conformance.py):

    @pytest.mark.rfc("9568-6.4.3-1", "holds")     # the test shows the rule holds
    @pytest.mark.rfc("9568-6.4.3-1", "refused")   # the test shows the opposite is refused

The way defaults to "holds". Every id must be a row of docs/rfc9568-requirements.md: a mark with
an unknown id or way stops the run at collection.

The plugin (registered by tests/conftest.py) records, for every selected test carrying rfc
marks, its outcome (passed, failed, error, skipped, xfailed, xpassed, or "not run" when the
session stopped first) and writes them as JSON when `--rfc-outcomes=PATH` (or the environment
variable VMACD_RFC_OUTCOMES) names a file. The file says whether the run was complete: every test
file that carries rfc marks was collected, no marked test was deselected and every marked test
reached an outcome. Only a complete run can regenerate or check docs/conformance.md.
"""
from __future__ import annotations

import ast
import json
import os
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

WAYS = ("holds", "refused")
ID_RE = re.compile(r"^9568-\d+(?:\.\d+)*-\d+$")
TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
REQUIREMENTS = ROOT / "docs" / "rfc9568-requirements.md"
ENV = "VMACD_RFC_OUTCOMES"
FORMAT = 1


# -- the requirement table --------------------------------------------------------------------

@dataclass(frozen=True)
class Requirement:
    """One row of docs/rfc9568-requirements.md."""

    req_id: str
    level: str
    text: str
    section: str


_ROW = re.compile(r"^\|\s*(9568-[0-9.]+-\d+)\s*\|\s*([A-Z ]+?)\s*\|\s*(.*?)\s*\|")


def requirements(markdown: str) -> list[Requirement]:
    """Parse the requirement rows (id, level, text) in order, with their `##` section title."""
    section, rows = "", []
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = _ROW.match(line)
        if m:
            rows.append(Requirement(m.group(1), m.group(2), m.group(3), section))
    return rows


def mark_args(mark: pytest.Mark) -> tuple[str, str]:
    """(id, way) of one rfc mark; ValueError naming the bad value."""
    if not mark.args or len(mark.args) > 2 or mark.kwargs:
        raise ValueError(f"rfc mark wants (id, way), got args {mark.args!r} kwargs {mark.kwargs!r}")
    req_id = mark.args[0]
    way = mark.args[1] if len(mark.args) > 1 else "holds"
    if not isinstance(req_id, str) or not ID_RE.match(req_id):
        raise ValueError(f"bad RFC requirement id {req_id!r} (want e.g. 9568-6.4.3-1)")
    if way not in WAYS:
        raise ValueError(f"rfc mark {req_id}: way must be one of {WAYS}, got {way!r}")
    return req_id, way


# -- which test files carry marks (without importing them) ------------------------------------

def _is_rfc_mark(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "rfc" and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "mark")


def files_with_marks(base: pathlib.Path) -> set[pathlib.Path]:
    """Every test_*.py under `base` whose source contains a `pytest.mark.rfc(...)` call."""
    found = set()
    for path in sorted(base.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(_is_rfc_mark(node) for node in ast.walk(tree)):
            found.add(path.resolve())
    return found


# -- the plugin -------------------------------------------------------------------------------

def addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rfc-outcomes", metavar="PATH", default=os.environ.get(ENV) or None,
                     help="write the outcomes of the tests carrying rfc marks to PATH (JSON), "
                          f"for tools/conformance.py; default ${ENV}")


def _outcome(report: pytest.TestReport) -> str:
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return "passed"


class OutcomeRecorder:
    """Collects the rfc marks and the outcome of every selected marked test; writes the JSON."""

    def __init__(self, path: str | None, tests: pathlib.Path = TESTS,
                 requirements_file: pathlib.Path = REQUIREMENTS) -> None:
        self.path = pathlib.Path(path) if path else None
        self.tests = tests
        self.known = {r.req_id for r in requirements(requirements_file.read_text(encoding="utf-8"))}
        self.marks: dict[str, list[tuple[str, str]]] = {}
        self.outcomes: dict[str, str] = {}
        self.files: set[pathlib.Path] = set()
        self.deselected: list[str] = []

    def _marks_of(self, item: pytest.Item) -> list[tuple[str, str]]:
        got = []
        for mark in item.iter_markers("rfc"):
            req_id, way = mark_args(mark)
            if req_id not in self.known:
                raise ValueError(f"rfc mark {req_id!r} is not a row of {REQUIREMENTS.name}")
            got.append((req_id, way))
        return sorted(set(got))

    def pytest_sessionstart(self) -> None:
        if self.path is not None:                  # never leave a previous run's file behind
            self.path.unlink(missing_ok=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        errors = []
        for item in items:
            try:
                found = self._marks_of(item)
            except ValueError as exc:
                errors.append(f"{item.nodeid}: {exc}")
                continue
            if found:
                self.marks[item.nodeid] = found
                self.files.add(item.path.resolve())
        if errors:
            self.path = None                       # no outcome file from a run that cannot count
            raise pytest.UsageError("bad rfc marks:\n  " + "\n  ".join(errors))

    def pytest_deselected(self, items: Iterable[pytest.Item]) -> None:
        for item in items:
            if any(True for _ in item.iter_markers("rfc")):
                self.deselected.append(item.nodeid)
                self.files.add(item.path.resolve())      # collected, then left out

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.marks:
            return
        if report.when != "teardown":            # the call, when there is one, follows its setup
            self.outcomes[report.nodeid] = _outcome(report)
        elif report.failed:
            self.outcomes[report.nodeid] = "error"

    def partial_reasons(self, session: pytest.Session) -> list[str]:
        reasons = []
        missing = sorted(files_with_marks(self.tests) - self.files)
        if missing:
            shown = ", ".join(str(p.relative_to(self.tests.parent)) for p in missing[:5])
            reasons.append(f"{len(missing)} test files with rfc marks not collected ({shown}"
                           f"{', ...' if len(missing) > 5 else ''})")
        if self.deselected:
            reasons.append(f"{len(self.deselected)} marked tests deselected")
        not_run = [n for n in self.marks if n not in self.outcomes]
        if not_run or session.shouldstop or session.shouldfail:
            reasons.append(f"the session stopped early ({len(not_run)} marked tests not run)")
        return reasons

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.path is None:
            return
        reasons = self.partial_reasons(session)
        doc = {
            "format": FORMAT,
            "complete": not reasons,
            "partial_because": reasons,
            "tests": {nodeid: {"outcome": self.outcomes.get(nodeid, "not run"),
                               "rfc": [list(m) for m in marks]}
                      for nodeid, marks in sorted(self.marks.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.path)
