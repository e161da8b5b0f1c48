"""RFC requirement marks: a checked helper for tests and an AST scanner for docs/conformance.md.

Convention (docs/conformance.md is generated from it by tools/conformance.py):

    @pytest.mark.rfc("9568-6.4.3-1", "holds")     # the test shows the rule holds
    @pytest.mark.rfc("9568-6.4.3-1", "refused")   # the test shows the opposite is refused

`rfc(id, way)` below builds the same mark but checks the id and the way at import time. The
scanner reads test sources with `ast` (no pytest run, no conftest, no plugin), so marks written
either way, on functions, classes, `pytestmark` or `pytest.param(marks=...)`, are all found.
"""
from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

WAYS = ("holds", "refused")
ID_RE = re.compile(r"^9568-\d+(?:\.\d+)*-\d+$")


def rfc(req_id: str, way: str = "holds") -> pytest.MarkDecorator:
    """`pytest.mark.rfc(req_id, way)` after checking both (ValueError on a typo)."""
    if not ID_RE.match(req_id):
        raise ValueError(f"bad RFC requirement id {req_id!r} (want e.g. 9568-6.4.3-1)")
    if way not in WAYS:
        raise ValueError(f"way must be one of {WAYS}, got {way!r}")
    return pytest.mark.rfc(req_id, way)


@dataclass(frozen=True)
class MarkUse:
    """One rfc mark found in the sources."""

    req_id: str
    way: str
    test: str      # "tests/unit/test_fsm.py::test_name" (module-level marks: the file)


def _is_rfc_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr == "rfc":
        return isinstance(f.value, ast.Attribute) and f.value.attr == "mark"
    return isinstance(f, ast.Name) and f.id == "rfc"


def _marks_in(node: ast.AST) -> list[tuple[str, str]]:
    found = []
    for sub in ast.walk(node):
        if _is_rfc_call(sub):
            args = [a.value for a in sub.args if isinstance(a, ast.Constant)]
            if args and isinstance(args[0], str):
                way = args[1] if len(args) > 1 and isinstance(args[1], str) else "holds"
                found.append((args[0], way))
    return found


def scan_file(path: pathlib.Path, root: pathlib.Path) -> list[MarkUse]:
    """All rfc marks in one test file, attributed to the test (or class, or module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root).as_posix()
    uses: list[MarkUse] = []

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}::{node.name}"
                for dec in node.decorator_list:
                    uses.extend(MarkUse(i, w, name) for i, w in _marks_in(dec))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name)
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
                uses.extend(MarkUse(i, w, prefix) for i, w in _marks_in(node.value))

    visit(tree.body, rel)
    return uses


def scan(paths: Iterable[pathlib.Path], root: pathlib.Path) -> list[MarkUse]:
    """Scan every test_*.py under the given paths."""
    out: list[MarkUse] = []
    for base in paths:
        files = [base] if base.is_file() else sorted(base.rglob("test_*.py"))
        for f in files:
            out.extend(scan_file(f, root))
    return out


@dataclass(frozen=True)
class Requirement:
    """One row of RFC9568-REQUIREMENTS.md."""

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
