"""tools/interop_doc.py end to end: a real pytest run with the interop hook writes junit XML; the
tool turns its matrix rows into the doc's generated block and --check compares it."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"
BEGIN = "<!-- interop-matrix: begin (tools/interop_doc.py writes this part from the interop run) -->"
END = "<!-- interop-matrix: end -->"

DEMO = '''
import pytest
from interop_util import row

@row("keepalived", 6, "multicast", "v3", "a | b", "vmacd higher", 1, "checks one")
def test_pass():
    pass

@row("frr", 4, "multicast", "v3", "c", "peer higher", 2, "checks two")
def test_fail():
    assert False, "boom"

@pytest.mark.skipif(True, reason="not here")
@row("keepalived", 4, "unicast", "v3", "d", "peer higher", 1, "checks three")
def test_skip():
    pass

@row("keepalived", 4, "unicast", "v3", "d", "vmacd higher", 2, "checks four")
def test_split_brain_shown():
    pass

def test_not_in_the_matrix():
    pass
'''

CONFTEST = f'''
import importlib.util, sys
sys.path.insert(0, {str(INTEROP)!r})
spec = importlib.util.spec_from_file_location("interop_conftest", {str(INTEROP / "conftest.py")!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
pytest_configure, pytest_runtest_setup = mod.pytest_configure, mod.pytest_runtest_setup
'''


def _tool():
    spec = importlib.util.spec_from_file_location("interop_doc", ROOT / "tools" / "interop_doc.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["interop_doc"] = mod              # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def junit(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("run")
    (d / "test_demo.py").write_text(DEMO)
    (d / "conftest.py").write_text(CONFTEST)
    cp = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                         f"--junitxml={d / 'junit.xml'}", "--rootdir", str(d), str(d / "test_demo.py")],
                        capture_output=True, text=True, cwd=d, timeout=120, check=False)
    assert "1 failed, 3 passed, 1 skipped" in cp.stdout, cp.stdout + cp.stderr
    return d / "junit.xml"


def test_rows_outcomes_and_order(junit):
    rows = _tool().read_junit(junit)
    got = [(r.test, r.outcome, r.one_master) for r in rows]
    assert got == [
        ("test_demo.py::test_fail", "failed", "unproven"),                       # frr first
        ("test_demo.py::test_split_brain_shown", "passed", "**no**: split brain, shown"),
        ("test_demo.py::test_skip", "skipped", "unproven"),     # same config: vmacd higher first
        ("test_demo.py::test_pass", "passed", "yes"),                            # IPv6 last
    ]
    assert rows[2].detail == "not here" and rows[0].detail.startswith("AssertionError: boom")
    assert rows[3].peer_version.startswith("keepalived")


def test_write_then_check(junit, tmp_path, capsys):
    tool = _tool()
    doc = tmp_path / "interop.md"
    doc.write_text(f"# Interop\n\nhand-written intro\n\n{BEGIN}\nstale\n{END}\n\n## Advice\nkept\n")
    assert tool.main(["--junit", str(junit), "--doc", str(doc), "--check"]) == 1
    assert "+| 4 | keepalived | IPv6 | multicast | v3 | a \\| b | vmacd higher | yes | passed" \
        in capsys.readouterr().out
    assert tool.main(["--junit", str(junit), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Interop\n\nhand-written intro\n\n" + BEGIN)
    assert text.endswith(END + "\n\n## Advice\nkept\n")
    assert "1. checks two" in text and "failed: AssertionError: boom" in text
    assert "test_not_in_the_matrix" not in text
    assert tool.main(["--junit", str(junit), "--doc", str(doc), "--check"]) == 0
    doc.write_text(text.replace("| yes |", "| no |"))          # a hand edit of the generated part
    assert tool.main(["--junit", str(junit), "--doc", str(doc), "--check"]) == 1


def test_unusable_input_exits_2(junit, tmp_path, capsys):
    tool = _tool()
    doc = tmp_path / "interop.md"
    doc.write_text("# no markers\n")
    assert tool.main(["--junit", str(junit), "--doc", str(doc)]) == 2
    assert "no '<!-- interop-matrix: begin" in capsys.readouterr().err
    assert tool.main(["--junit", str(tmp_path / "missing.xml"), "--doc", str(doc)]) == 2
    empty = tmp_path / "empty.xml"
    empty.write_text('<testsuites><testsuite name="pytest"><testcase classname="a" name="b"/>'
                     "</testsuite></testsuites>")
    assert tool.main(["--junit", str(empty), "--doc", str(doc)]) == 2
    assert "no testcase with an interop_matrix property" in capsys.readouterr().err


def test_the_committed_doc_has_the_markers():
    text = (ROOT / "docs" / "interop.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)
