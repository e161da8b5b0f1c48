"""tests/rfcmarks.py + tools/conformance.py: marks are found and classified (both/one way/n/a)."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


marks = _load("rfcmarks", ROOT / "tests" / "rfcmarks.py")
conf = _load("conformance", ROOT / "tools" / "conformance.py")

REQS = """## 6 Protocol
| id | level | requirement | how |
|---|---|---|---|
| 9568-6.1-6 | MUST | Skew. | x |
| 9568-6.1-7 | MUST | MDI. | x |
| 9568-6.4.3-7 | MUST | forward. | x |
| 9568-6.4.3-10 | MUST | shutdown. | x |
| 9568-6.4.3-11 | MUST | adver. | x |
"""

SRC = '''
import pytest
pytestmark = [pytest.mark.rfc("9568-6.4.3-11", "holds")]

@pytest.mark.rfc("9568-6.1-6", "holds")
@pytest.mark.rfc("9568-6.1-6", "refused")
def test_a(): pass

class TestB:
    @pytest.mark.rfc("9568-6.1-7", "refused")
    def test_c(self): pass

@pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.rfc("9568-9-9", "holds"))])
def test_d(x): pass
'''


def test_scan_and_render(tmp_path):
    f = tmp_path / "test_x.py"
    f.write_text(SRC)
    uses = marks.scan([tmp_path], tmp_path)
    got = {(u.req_id, u.way, u.test) for u in uses}
    assert ("9568-6.1-7", "refused", "test_x.py::TestB::test_c") in got
    assert ("9568-6.4.3-11", "holds", "test_x.py") in got
    assert ("9568-9-9", "holds", "test_x.py::test_d") in got
    text = conf.render(marks.requirements(REQS), uses)
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("| 9568-"):                  # the status table comes first
            rows.setdefault(line.split("|")[1].strip(), line.split("|")[3].strip())
    assert rows["9568-6.1-6"] == "both ways"
    assert rows["9568-6.1-7"] == "one way (refused)"
    assert rows["9568-6.4.3-7"] == "n/a"
    assert rows["9568-6.4.3-10"].startswith("departed; not yet")
    assert "`9568-9-9`" in text                       # unknown ids are listed, not dropped


def test_rfc_helper_checks_its_arguments():
    assert marks.rfc("9568-6.4.3-1", "refused").args == ("9568-6.4.3-1", "refused")
    with pytest.raises(ValueError):
        marks.rfc("6.4.3-1", "holds")
    with pytest.raises(ValueError):
        marks.rfc("9568-6.4.3-1", "ok")
