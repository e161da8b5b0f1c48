"""vmaclab: network-namespace lab for VRRP implementations (vmacd, keepalived, FRR)."""
from __future__ import annotations

from pathlib import Path

# where the bundled topologies/ and scenarios/ live: beside the package in a source checkout
# (netns-lab/), under /usr/share/vmacd-lab when installed from the Debian package vmacd-lab
_DATA_DIRS = (Path(__file__).resolve().parent.parent, Path("/usr/share/vmacd-lab"))


def data_dir(kind: str) -> Path:
    """The directory of the bundled *kind* ("topologies" or "scenarios"): the first that exists,
    else the source checkout's (so an error message names a sensible path)."""
    for base in _DATA_DIRS:
        if (base / kind).is_dir():
            return base / kind
    return _DATA_DIRS[0] / kind
