"""The master's LAN interface is deleted and created again (a NIC driver reload, a re-created
VLAN or veth): the vMAC goes with it and the backup takes over; once the interface is back (same
name and addresses, a new ifindex) vmacd starts the instance again on it and, having the higher
priority, takes mastership back with a fresh vMAC on the new device."""
from __future__ import annotations

import json
import time

from daemon_util import (
    VMAC4,
    addresses,
    failover_bound_s,
    fdb_ports,
    fleet,
    port,
    udp_ask,
    up_links_with_mac,
    vmacd_links,
)
from vmaclab.util import wait_until

__all__ = ["fleet"]


def _ifindex(lab, node: str, dev: str) -> int:
    return json.loads(lab.run(node, ["ip", "-j", "link", "show", dev]).stdout)[0]["ifindex"]


def test_interface_recreated_the_instance_starts_again_on_it(fleet) -> None:
    lab = fleet.lab
    vip, dev = lab.vip("lan"), lab.ifname("r1", "lan")
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    fleet.echo(["r1", "r2"])
    old = _ifindex(lab, "r1", dev)

    lab.unplug("r1", "lan")
    wait_until(lambda: r2.state() == "master", failover_bound_s(100), what="r2 master")
    wait_until(lambda: r1.state() == "fault", 2.0, what="r1 in fault without its interface")
    assert vmacd_links(lab, "r1") == []               # the vMAC went with its parent
    assert udp_ask(lab, "c1", vip) == "r2"

    lab.replug("r1", "lan")
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5.0,
               what="r1 master again on the new interface")
    assert _ifindex(lab, "r1", dev) != old
    assert up_links_with_mac(lab, "r1", VMAC4) and not up_links_with_mac(lab, "r2", VMAC4)
    assert vip in addresses(lab, "r1") and vip not in addresses(lab, "r2")
    # the new device got the parent settings again (the parent must not answer ARP for the VIP)
    assert lab.run("r1", ["sysctl", "-n", f"net.ipv4.conf.{dev}.arp_ignore"]).stdout.strip() == "1"
    wait_until(lambda: fdb_ports(lab, VMAC4) == [port(lab, "r1")], 2.0, what="vMAC on r1's port")
    assert udp_ask(lab, "c1", vip) == "r1"


def test_recreated_interface_without_its_address_waits_for_it(fleet) -> None:
    """The new device comes up before its address is configured: the instance waits in fault
    (there is no source address to advertise from) and starts once the address is there, which
    sends no link event, so vmacd has to look again by itself."""
    lab = fleet.lab
    dev = lab.ifname("r1", "lan")
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    lab.unplug("r1", "lan")
    wait_until(lambda: (r1.state(), r2.state()) == ("fault", "master"), failover_bound_s(100),
               what="r2 master, r1 in fault")
    lab.replug("r1", "lan", addresses=False)
    for _ in range(10):                               # 1 s: no address, no start, no crash
        assert r1.state() == "fault" and vmacd_links(lab, "r1") == []
        time.sleep(0.1)
    lab.run("r1", ["ip", "addr", "add", f"{lab.addr('r1', 'lan')}/24", "dev", dev])
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5.0,
               what="r1 master once its address is back")
    assert "instance started again" in r1.log_tail(50)
    steps = [(h["from"], h["to"]) for h in r1.control({"cmd": "history"})["history"]]
    assert steps == [("init", "backup"), ("backup", "master"), ("master", "fault"),   # old device
                     ("init", "backup"), ("backup", "master")], steps                  # new one
