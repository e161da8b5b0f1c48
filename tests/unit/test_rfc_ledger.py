"""tests/rfcmarks.py records the outcomes of marked tests; tools/conformance.py counts only passes."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


conf = _load("conformance", ROOT / "tools" / "conformance.py")

REQS = """## 6 Protocol
| id | level | requirement | how |
|---|---|---|---|
| 9568-6.1-6 | MUST | Skew. | x |
| 9568-6.1-7 | MUST | MDI. | x |
| 9568-6.1-8 | MUST | Preempt. | x |
| 9568-6.4.3-7 | MUST | forward. | x |
| 9568-6.4.3-10 | MUST | shutdown. | x |
| 9568-6.4.3-11 | MUST | adver. | x |
| 9568-6.4.3-12 | MUST | zero. | x |
"""

CONFTEST = f"""
import pathlib, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
import rfcmarks

HERE = pathlib.Path(__file__).parent

def pytest_addoption(parser):
    rfcmarks.addoption(parser)

def pytest_configure(config):
    config.pluginmanager.register(rfcmarks.OutcomeRecorder(
        config.getoption("rfc_outcomes"), tests=HERE, requirements_file=HERE / "reqs.md"))
"""

SUITE = '''
import pytest
rfc = pytest.mark.rfc

@rfc("9568-6.1-6", "holds")
def test_holds(): pass

@rfc("9568-6.1-6", "refused")
def test_refused(): pass

@rfc("9568-6.1-7", "holds")
@rfc("9568-6.1-7", "refused")
def test_both_in_one(): pass

@rfc("9568-6.1-8", "holds")
@pytest.mark.parametrize("x", [1, pytest.param(2, marks=rfc("9568-6.1-8", "refused"))])
def test_params(x): pass

@rfc("9568-6.4.3-11", "refused")
def test_skips(): pytest.skip("not here")

@rfc("9568-6.4.3-11", "holds")
def test_fails(): assert False

@rfc("9568-6.4.3-12", "holds")
@pytest.mark.xfail(reason="known")
def test_xfails(): assert False

@rfc("9568-6.4.3-12", "refused")
def test_passes(): pass

class TestBroken:
    @pytest.fixture
    def bad(self): raise RuntimeError("setup")

    @rfc("9568-6.4.3-12", "holds")
    def test_errors(self, bad): pass

def test_unmarked(): pass
'''


def run_suite(tmp_path: pathlib.Path, *args: str, suite: str = SUITE) -> tuple[int, dict | None, str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "reqs.md").write_text(REQS)
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(suite))
    out = tmp_path / "out" / "o.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           f"--rfc-outcomes={out}", *args, str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    data = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, data, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict:
    rc, data, out = run_suite(tmp_path_factory.mktemp("full"))
    assert rc == 1 and data is not None, out           # test_fails fails, test_errors errors
    return data


def test_recorder_writes_every_marked_test_with_its_outcome(full):
    got = {k.split("::", 1)[1]: v["outcome"] for k, v in full["tests"].items()}
    assert got == {
        "test_holds": "passed", "test_refused": "passed", "test_both_in_one": "passed",
        "test_params[1]": "passed", "test_params[2]": "passed", "test_skips": "skipped",
        "test_fails": "failed", "test_xfails": "xfailed", "test_passes": "passed",
        "TestBroken::test_errors": "error",
    }
    marks = {k.split("::", 1)[1]: v["rfc"] for k, v in full["tests"].items()}
    assert marks["test_params[1]"] == [["9568-6.1-8", "holds"]]
    assert marks["test_params[2]"] == [["9568-6.1-8", "holds"], ["9568-6.1-8", "refused"]]
    assert full["complete"] is True and full["partial_because"] == []


def _rows(text: str) -> dict[str, str]:
    return {ln.split("|")[1].strip(): ln.split("|")[3].strip()
            for ln in text.splitlines() if ln.startswith("| 9568-") and ln.count("|") == 6}


def _render(data: dict) -> str:
    reqs = conf.rfcmarks.requirements(REQS)
    return conf.render(reqs, conf.Outcomes(data["complete"], data["partial_because"],
                                           {k: (v["outcome"], [tuple(m) for m in v["rfc"]])
                                            for k, v in data["tests"].items()}))


def test_only_passing_tests_count_and_both_ways_needs_two_tests(full):
    text = _render(full)
    rows = _rows(text)
    assert rows["9568-6.1-6"] == "both ways"
    assert rows["9568-6.1-7"] == "one way (holds and refused in one test)"
    assert rows["9568-6.1-8"] == "one way (holds and refused in one test)"   # one function
    assert rows["9568-6.4.3-11"] == "not yet"                   # skipped and failed count nothing
    assert rows["9568-6.4.3-12"] == "one way (refused)"         # xfailed and error count nothing
    assert rows["9568-6.4.3-7"] == "n/a"
    assert rows["9568-6.4.3-10"] == "departed; not yet tested"
    assert "| both ways | 1 |" in text and "| **total** | **7** |" in text
    assert "| `test_suite.py::test_skips` | skipped | 9568-6.4.3-11 refused |" in text


def test_check_names_the_rows_that_differ(full, tmp_path, capsys):
    fresh = _render(full)
    doc = tmp_path / "conformance.md"
    doc.write_text(fresh)
    assert conf.check(fresh, fresh, doc) == 0
    stale = fresh.replace("| 9568-6.1-6 | MUST | both ways |", "| 9568-6.1-6 | MUST | one way (holds) |")
    assert conf.check(stale, fresh, doc) == 1
    err = capsys.readouterr().err
    assert "9568-6.1-6 | MUST | one way (holds)" in err and "9568-6.1-6 | MUST | both ways" in err
    assert "9568-6.1-7" not in err


def test_partial_runs_are_flagged_and_never_checked(tmp_path, capsys):
    rc, data, out = run_suite(tmp_path, "-k", "holds or refused")
    assert rc == 0 and data is not None, out
    assert data["complete"] is False and "marked tests deselected" in data["partial_because"][0]
    outcomes = tmp_path / "out" / "o.json"
    doc = tmp_path / "conformance.md"
    doc.write_text("stale\n")
    argv = ["--outcomes", str(outcomes), "--requirements", str(tmp_path / "reqs.md"), "--out", str(doc)]
    assert conf.main(["--check", *argv]) == 0
    assert "partial run" in capsys.readouterr().out
    assert conf.main(argv) == 1 and doc.read_text() == "stale\n"


def test_a_file_with_marks_left_out_makes_the_run_partial(tmp_path):
    (tmp_path / "test_other.py").write_text('import pytest\n\n@pytest.mark.rfc("9568-6.1-6")\n'
                                            'def test_o(): pass\n')
    _, data, out = run_suite(tmp_path, "--ignore", str(tmp_path / "test_other.py"))
    assert data is not None, out
    assert data["complete"] is False and "test_other.py" in data["partial_because"][0]


def test_bad_marks_stop_the_run_at_collection(tmp_path):
    rc, data, out = run_suite(tmp_path, suite='import pytest\n\n@pytest.mark.rfc("9568-6.1-99", "holds")\n'
                                              '@pytest.mark.rfc("9568-6.1-6", "ok")\ndef test_x(): pass\n')
    assert rc != 0 and data is None
    assert "9568-6.1-99" in out or "'ok'" in out


def test_the_committed_table_has_every_row_the_doc_lists():
    reqs = conf.rfcmarks.requirements((ROOT / "docs" / "rfc9568-requirements.md").read_text())
    ids = [r.req_id for r in reqs]
    assert len(ids) == len(set(ids)) == 140
    assert set(conf.NOT_APPLICABLE) <= set(ids) and set(conf.DEPARTED) <= set(ids)
