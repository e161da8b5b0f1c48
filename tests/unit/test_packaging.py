"""setup.cfg lists every package on disk, the lab's under its installed name `vmaclab`."""
from __future__ import annotations

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_setup_cfg_lists_every_package_on_disk():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    mapping = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    assert mapping == {"vmaclab": "netns-lab/vmaclab"}
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vmacd").rglob("__init__.py")}
    lab = ROOT / mapping["vmaclab"]
    on_disk |= {".".join(("vmaclab",) + p.parent.relative_to(lab).parts)
                for p in lab.rglob("__init__.py")}
    assert listed == on_disk
