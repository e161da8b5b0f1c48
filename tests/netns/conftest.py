"""Fixtures of the lab tests: ``routers`` (``lab`` is shared: tests/conftest.py)."""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from vmaclab import impls
from vmaclab.impls.base import Router
from vmaclab.lab import Lab
from vmaclab.util import kill, wait_until


@pytest.fixture
def routers() -> Iterator[Callable[..., list[Router]]]:
    """Factory: start *impl* on the lab's routers with descending priorities; stopped afterwards."""
    started: list[Router] = []

    def start(lab: Lab, impl: str, advert_ms: int = 100, vrid: int = 51, version: int = 3,
              priorities: tuple[int, ...] = (200, 100), elect: bool = True,
              **kw: object) -> list[Router]:
        rs = []
        for node, prio in zip(lab.topo.routers(), priorities, strict=False):
            r = impls.get(impl)().configure(lab, node, "lan", vrid, lab.vip("lan"), prio, advert_ms,
                                            version=version, **kw)
            r.start()
            started.append(r)
            rs.append(r)
        if elect:
            top = max(priorities[:len(rs)])
            want = ["master" if p == top else "backup" for p in priorities[:len(rs)]]
            wait_until(lambda: [r.state() for r in rs] == want, 10.0, what=f"{impl} election")
        return rs

    yield start
    for r in started:   # signal all first: graceful stops then overlap
        for pid in r.term_pids():
            kill(pid, signal.SIGTERM)
    for r in started:
        try:
            r.stop()
        except Exception:  # noqa: BLE001, S110 - the lab's down() kills whatever is left
            pass
