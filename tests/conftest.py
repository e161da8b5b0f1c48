"""Suite-wide pytest wiring: the directory of a test decides its marker (unit, sim, netns, interop)."""
from __future__ import annotations

import os
import pathlib

import pytest

_DIR_MARKERS = {"unit", "sim", "netns", "interop"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        for name in _DIR_MARKERS.intersection(parts):
            item.add_marker(getattr(pytest.mark, name))
        if ({"netns", "interop"} & set(parts)) and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root for network namespaces"))
