"""Interop fixtures: ``routers`` (start any implementation); ``lab`` is shared: tests/conftest.py.

Hook: a test marked ``matrix(...)`` (``interop_util.row``) gets its row and the peer's version as
junit XML properties (``interop_matrix``, ``peer_version``); tools/interop_doc.py writes
docs/interop.md's matrix from a run's ``--junitxml`` file.
"""
from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
from collections.abc import Callable, Iterator

import pytest
from interop_util import VRID, make
from vmaclab.impls.base import Router
from vmaclab.lab import Lab
from vmaclab.util import LabError

# --------------------------------------------------------------------------- matrix rows

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "matrix(**row): a row of the interop matrix in "
                                       "docs/interop.md (interop_util.row, tools/interop_doc.py)")


@pytest.hookimpl(tryfirst=True)         # before skip marks end the setup: skipped rows count too
def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("matrix")
    if mark is None:
        return
    item.user_properties.append(("interop_matrix", json.dumps(mark.kwargs, sort_keys=True)))
    item.user_properties.append(("peer_version", peer_version(mark.kwargs["peer"])))


@functools.cache
def peer_version(peer: str) -> str:
    """"keepalived 2.2.7" / "frr 8.4.4" as the installed binary reports it."""
    argv = {"keepalived": ["/usr/sbin/keepalived", "--version"],
            "frr": ["/usr/lib/frr/vrrpd", "--version"]}[peer]
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{peer} (version unknown: {exc})"
    m = re.search(r"(?:v|version )(\d+\.\d+\.\d+)", cp.stdout + cp.stderr)
    return f"{peer} {m.group(1)}" if m else f"{peer} (version unknown)"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def routers() -> Iterator[Callable[..., Router]]:
    """Factory: ``start(lab, kind, node, priority, advert_ms, **kw)`` -> a started Router."""
    started: list[Router] = []

    def start(lb: Lab, kind: str, node: str, priority: int, advert_ms: int = 100, *,
              vip: str | None = None, version: int = 3, vrid: int = VRID, **kw: object) -> Router:
        r = make(kind).configure(lb, node, "lan", vrid, vip or lb.vip("lan"), priority, advert_ms,
                                 version=version, **kw)
        r.start()
        started.append(r)
        return r

    yield start
    for r in started:   # graceful stops are tested where they matter; here they only cost time
        r.crash_kill()     # (a make-before-break vmacd waits up to Master_Down_Interval for a successor)
    for r in started:
        with contextlib.suppress(OSError, subprocess.SubprocessError, LabError):
            r.stop()       # Lab.down() kills whatever is left
