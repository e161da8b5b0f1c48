"""FRR 8.4 vrrpd (with zebra) runs in the lab and fails over."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from vmaclab.faults import fault
from vmaclab.util import wait_until


@pytest.mark.parametrize("event", ["crash", "term"])
def test_frr_pair_elects_and_fails_over(lab, routers, event: str) -> None:
    lb = lab("pair")
    r1, r2 = routers(lb, "frr")
    assert set(r1.pids()) == {"zebra", "vrrpd"}
    cp = lb.run("c1", ["arping", "-c1", "-w2", "-I", "eth0", lb.vip("lan")])
    assert "00:00:5E:00:01:33" in cp.stdout.upper()
    done = fault(lb, r1, event)
    wait_until(lambda: r2.state() == "master", 2.0, what=f"r2 master after {event}")
    assert time.monotonic() - done["t"] < 2.0
    pids = [p for r in (r1, r2) for p in r.pids().values()]
    lb.down()
    assert not [p for p in Path("/var/tmp/frr").glob("*.*") if int(p.suffix[1:]) in pids]
