"""nftables loss and partition demonstrably drop; forged advertisements reach the routers."""
from __future__ import annotations

import pytest
from vmaclab.faults import counters, fault
from vmaclab.observe import Observer, adverts
from vmaclab.topology import Topology
from vmaclab.util import wait_until


def _topo() -> Topology:
    topo = Topology("faults")
    topo.add_lan("lan")
    topo.add_router("r1", ["lan"])
    topo.add_router("r2", ["lan"])
    topo.add_client("c1", ["lan"])
    topo.add_attacker("x1", ["lan"])
    return topo


def test_loss_drops_about_the_share_asked(lab) -> None:
    lb = lab(_topo())
    fault(lb, None, "loss", percent=30, lan="lan")
    # 400 multicast frames from x1 flooded to the 3 other ports = 1200 forwarding decisions,
    # 30 % of them dropped: 360 expected, sd ~16; the bounds are wide on purpose
    sent = fault(lb, None, "forge", node="x1", vrid=99, count=400)["sent"]
    assert sent == 400
    dropped = counters(lb, "lan")["loss 30%"]["packets"]
    assert 1200 * 0.2 < dropped < 1200 * 0.4, dropped
    fault(lb, None, "heal", lan="lan")
    assert counters(lb, "lan") == {}


def test_loss_100_silences_the_lan(lab) -> None:
    lb = lab(_topo())
    fault(lb, None, "loss", percent=100)
    cp = lb.run("c1", ["arping", "-c2", "-w2", "-I", "eth0", lb.addr("r1", "lan")], check=False)
    assert "Received 0 response" in cp.stdout
    assert counters(lb, "lan")["loss 100%"]["packets"] >= 2


def test_partition_splits_brain_and_heals(lab, routers) -> None:
    lb = lab(_topo())
    r1, r2 = routers(lb, "keepalived")
    fault(lb, r1, "partition", a=["r1"], b=["r2", "c1", "x1"])
    wait_until(lambda: r2.state() == "master", 3.0, what="r2 master behind the partition")
    assert r1.state() == "master"          # both sides think they are master
    c = counters(lb, "lan")
    assert c["partition a->b"]["packets"] > 0 and c["partition b->a"]["packets"] > 0
    fault(lb, r1, "heal")
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 3.0, what="healed")


@pytest.mark.parametrize("priority,expect", [(254, "backup"), (1, "master")])
def test_forged_advertisements_from_attacker(lab, routers, priority: int, expect: str) -> None:
    lb = lab(_topo())
    (r1,) = routers(lb, "keepalived", priorities=(200,), elect=False)
    wait_until(lambda: r1.state() == "master", 5.0, what="r1 master")
    out = fault(lb, r1, "flood", node="x1", priority=priority, rate=50, duration=1.0,
                src="192.0.2.250")
    assert 40 <= out["sent"] <= 60
    assert r1.state() == expect


def test_flood_spread_rotates_vrids_each_from_its_vmac(lab, tmp_path) -> None:
    lb = lab(_topo())
    obs = Observer.start(lb.bridge_ns("lan"), [lb.bridge_port("x1", "lan")],
                         str(tmp_path / "obs.jsonl"), kinds=["vrrp"], rx_only=True)
    try:
        out = fault(lb, None, "flood", node="x1", vrid=52, spread=4, count=8, rate=0,
                    duration=0, priority=100)
        wait_until(lambda: len(adverts(obs.events())) >= 8, 3.0, what="8 adverts captured")
    finally:
        events = obs.stop()
    assert out["sent"] == 8
    got = [(e["vrid"], e["src_mac"], e["priority"]) for e in adverts(events)]
    assert got == [(v, f"00:00:5e:00:01:{v:02x}", 100) for v in (52, 53, 54, 55)] * 2
