"""Suite-wide pytest wiring: the directory of a test decides its marker (unit, sim, netns, interop;
tests/fuzz, the short fuzz run, is pure and counts as unit); the rfc outcome recorder
(tests/rfcmarks.py) is registered here."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator

import pytest
import rfcmarks

_DIR_MARKERS = {"unit": "unit", "fuzz": "unit", "sim": "sim", "netns": "netns", "interop": "interop"}


def pytest_addoption(parser: pytest.Parser) -> None:
    rfcmarks.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(rfcmarks.OutcomeRecorder(config.getoption("rfc_outcomes")),
                                  "rfc-outcomes")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        for name in {_DIR_MARKERS[d] for d in _DIR_MARKERS.keys() & set(parts)}:
            item.add_marker(getattr(pytest.mark, name))
        if ({"netns", "interop"} & set(parts)) and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root for network namespaces"))


@pytest.fixture
def lab() -> Iterator[Callable[..., object]]:
    """Factory for the netns and interop tests: ``lab("pair")`` or ``lab(Topology)`` -> a Lab
    that is up; torn down after the test, and checked to leave no namespace of its prefix."""
    from vmaclab.lab import Lab, lab_namespaces

    made: list[Lab] = []

    def make(topo, **kw: object) -> Lab:
        obj = Lab(topo, **kw)
        made.append(obj)
        return obj.up()

    yield make
    for obj in made:
        obj.down()
        assert not lab_namespaces(obj.prefix), f"namespaces of {obj.prefix} left behind"
