"""Interop fixtures: ``routers`` (start any implementation); ``lab`` is shared: tests/conftest.py."""
from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator

import pytest
from interop_util import VRID, make
from vmaclab.impls.base import Router
from vmaclab.lab import Lab
from vmaclab.util import LabError

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
