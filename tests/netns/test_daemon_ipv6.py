"""VRRPv3 over IPv6: a vmacd pair with VIPs fe80::1 + 2001:db8:0:1::fe elects,
fails over on crash, the new master announces both VIPs with unsolicited NAs (override) from
00:00:5e:00:02:VRID, and the client's neighbour entry for the VIP says the vMAC.
"""
from __future__ import annotations

import time

from daemon_util import (
    VMAC6,
    addresses,
    capture,
    failover_bound_s,
    fdb_ports,
    fleet,
    neigh,
    port,
    sent_from,
    sleep_observing,
    udp_ask,
    up_links_with_mac,
)
from vmaclab.faults import fault
from vmaclab.util import wait_until

__all__ = ["fleet"]


def test_ipv6_election_failover_and_unsolicited_na(fleet) -> None:
    lab = fleet.lab
    vip = lab.vip("lan", 6)
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1", family=6)
    r1, r2 = rs["r1"], rs["r2"]
    wait_until(lambda: {vip, "fe80::1"} <= set(addresses(lab, "r1")), 2.0, what="VIPs on r1")
    assert up_links_with_mac(lab, "r1", VMAC6) and not up_links_with_mac(lab, "r2", VMAC6)
    assert vip not in addresses(lab, "r2") and "fe80::1" not in addresses(lab, "r2")
    fleet.echo(["r1", "r2"])
    obs = capture(fleet)
    assert udp_ask(lab, "c1", vip) == "r1"
    assert neigh(lab, "c1", vip)["lladdr"] == VMAC6
    sleep_observing(1.0)                       # r2 is backup: nothing from the vMAC

    done = fault(lab, r1, "crash")
    t_fault = int(done["t"] * 1e9)
    bound = failover_bound_s(100)
    wait_until(lambda: r2.state() == "master", bound, interval=0.005, what="r2 master")
    took = time.monotonic() - done["t"]
    wait_until(lambda: fdb_ports(lab, VMAC6) == [port(lab, "r2")], 2.0, what="vMAC on r2's port")
    assert udp_ask(lab, "c1", vip) == "r2"     # the VIP answers again, now from r2
    sleep_observing(0.5)
    events = obs.stop()
    print(f"\nipv6 crash: r2 master {took * 1000:.0f} ms after the fault")

    assert sent_from(events, port(lab, "r1"), VMAC6, before_ns=t_fault)   # the capture works
    assert not sent_from(events, port(lab, "r2"), VMAC6, before_ns=t_fault)
    nas = [e for e in sent_from(events, port(lab, "r2"), VMAC6, after_ns=t_fault)
           if e["kind"] == "na"]
    assert {e["target"] for e in nas} >= {vip, "fe80::1"}, nas
    assert all(e["override"] and not e["solicited"] for e in nas if e["dst_ip"] == "ff02::1")
    adverts = [e for e in sent_from(events, port(lab, "r2"), VMAC6, after_ns=t_fault)
               if e["kind"] == "vrrp"]
    assert adverts and all(e["version"] == 3 and e["dst_ip"] == "ff02::12" and e["ttl"] == 255
                           and e["src_ip"].startswith("fe80:") for e in adverts)
    assert took < bound, took
    assert {vip, "fe80::1"} <= set(addresses(lab, "r2"))
    assert up_links_with_mac(lab, "r2", VMAC6)
    assert neigh(lab, "c1", vip)["lladdr"] == VMAC6
