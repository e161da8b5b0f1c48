"""unicast_peers (a departure from RFC 9568, Heartbeat `ucast`): adverts go to the peers only,
with TTL 255, and the pair elects and fails over exactly as with multicast; nothing is sent to
224.0.0.18."""
from __future__ import annotations

import pytest
from vmaclab import impls
from vmaclab.faults import fault
from vmaclab.observe import Observer, bridge_ports
from vmaclab.util import wait_until


# the departure (unicast_peers, docs/conformance.md): this test checks the departed behaviour, that with peers
# configured nothing goes to the group
@pytest.mark.rfc("9568-7.2-7", "refused")
def test_unicast_pair_elects_and_fails_over(lab, tmp_path):
    lb = lab("pair")
    a1, a2 = lb.addr("r1", "lan"), lb.addr("r2", "lan")
    rs = []
    for node, prio, peer in (("r1", 200, a2), ("r2", 100, a1)):
        r = impls.get("vmacd")().configure(lb, node, "lan", 51, lb.vip("lan"), prio, 100,
                                           unicast_peers=[peer])
        r.start()
        rs.append(r)
    br = lb.bridge_ns("lan")
    obs = Observer.start(br, bridge_ports(br, lb.bridge("lan")), str(tmp_path / "cap.jsonl"),
                         kinds=["vrrp"])
    wait_until(lambda: [r.state() for r in rs] == ["master", "backup"], 5, what="election")
    wait_until(lambda: len([e for e in obs.events() if e.get("kind") == "vrrp"]) >= 5, 3,
               what="adverts on the LAN")
    fault(lb, rs[0], "crash")
    wait_until(lambda: rs[1].state() == "master", 3, what="takeover")
    frames = [e for e in obs.stop() if e.get("kind") == "vrrp"]
    assert frames
    assert {e["dst_ip"] for e in frames} <= {a1, a2}, {e["dst_ip"] for e in frames}
    assert {e["ttl"] for e in frames} == {255}
