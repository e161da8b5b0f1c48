"""The address owner (priority 255, its VIP is its own address): it takes over at startup
without waiting, preempts even with preempt = false, advertises 255, and only its vMAC answers and
announces the address: the parent's own ARP replies, gratuitous ARP and neighbour advertisements
are filtered (tables `arp vmacd_owner`, `ip6 vmacd_owner`)."""
from __future__ import annotations

import json
import re
import time

import pytest
from vmaclab import impls
from vmaclab.observe import Observer, bridge_ports
from vmaclab.util import wait_until

VMAC4 = "00:00:5e:00:01:33"
VMAC6 = "00:00:5e:00:02:33"


def _owner_router(lab, node: str, prio: int, preempt: bool = True, family: int = 4):
    """A vmacd instance whose VIP is r1's own address (so r1 at 255 is the address owner)."""
    own = lab.addr("r1", "lan", family)
    return impls.get("vmacd")().configure(lab, node, "lan", 51, own, prio, 100, preempt=preempt)


def _arp_macs(lab, ip: str) -> list[str]:
    out = lab.run("c1", ["arping", "-c", "2", "-w", "2", "-I", lab.ifname("c1", "lan"), ip],
                  check=False).stdout
    return [m.lower() for m in re.findall(r"\[([0-9A-Fa-f:]{17})\]", out)]


@pytest.mark.rfc("9568-6.4.1-2", "holds")
@pytest.mark.rfc("9568-6.1-8", "holds")
@pytest.mark.rfc("9568-5.2.4-1", "holds")
@pytest.mark.rfc("9568-8.1.2-1", "holds")
@pytest.mark.rfc("9568-8.1.2-2", "holds")
@pytest.mark.rfc("9568-8.1.2-2", "refused")
def test_owner_takes_over_at_once_and_only_its_vmac_answers_arp(lab, tmp_path):
    lb = lab("pair")
    own = lb.addr("r1", "lan")
    r2 = _owner_router(lb, "r2", 100)
    r2.start()
    wait_until(lambda: r2.state() == "master", 5, what="r2 master while the owner is away")
    br = lb.bridge_ns("lan")
    obs = Observer.start(br, bridge_ports(br, lb.bridge("lan")), str(tmp_path / "cap.jsonl"),
                         kinds=["vrrp"])
    r1 = _owner_router(lb, "r1", 255, preempt=False)     # the owner preempts whatever its setting
    r1.start()
    t_up = time.monotonic_ns()
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 3, what="owner wins")
    events = obs.stop()
    port = lb.bridge_port("r1", "lan")
    mine = [e for e in events if e.get("ifname") == port and e.get("dir") == "rx"
            and e.get("kind") == "vrrp"]
    assert mine and {e["priority"] for e in mine} == {255} and {e["src_ip"] for e in mine} == {own}
    # no Master_Down wait: the first advert follows the daemon's start well inside one MDI
    assert (mine[0]["t_ns"] - t_up) / 1e6 < 250, (mine[0]["t_ns"] - t_up) / 1e6
    assert set(_arp_macs(lb, own)) == {VMAC4}
    # the opposite: without vmacd's ARP filter the parent answers for its address with its MAC
    lb.run("r1", ["nft", "delete", "table", "arp", "vmacd_owner"])
    assert len(set(_arp_macs(lb, own))) == 2


@pytest.mark.rfc("9568-8.1.2-3", "holds")
@pytest.mark.rfc("9568-8.1.2-3", "refused")
@pytest.mark.rfc("9568-8.2.2-5", "holds")
@pytest.mark.rfc("9568-8.2.2-5", "refused")
@pytest.mark.parametrize("family", [4, 6])
def test_owner_parent_never_speaks_for_the_owned_address(lab, tmp_path, family):
    """The owner's link bounces with the kernel told to announce addresses on link up
    (arp_notify / ndisc_notify), then a client resolves the owned address: every ARP or NA frame
    that says where the address is comes from the vMAC. Remove vmacd's owner table and the
    parent's own answer (IPv4 also its gratuitous ARP) with the physical MAC shows up."""
    lb = lab("pair")
    own = lb.addr("r1", "lan", family)
    dev = lb.ifname("r1", "lan")
    knob = f"net.ipv4.conf.{dev}.arp_notify" if family == 4 else f"net.ipv6.conf.{dev}.ndisc_notify"
    lb.run("r1", ["sysctl", "-qw", f"{knob}=1"])
    if family == 6:   # a static address survives the bounce (the default flushes it on link down)
        lb.run("r1", ["sysctl", "-qw", f"net.ipv6.conf.{dev}.keep_addr_on_down=1"])
    phys = json.loads(lb.run("r1", ["ip", "-j", "link", "show", dev]).stdout)[0]["address"].lower()
    vmac = VMAC4 if family == 4 else VMAC6
    r1 = _owner_router(lb, "r1", 255, family=family)
    r1.start()
    wait_until(lambda: r1.state() == "master", 3, what="owner master")
    br, port = lb.bridge_ns("lan"), lb.bridge_port("r1", "lan")
    c1 = lb.ifname("c1", "lan")

    def provoke(run: str) -> list[dict]:
        obs = Observer.start(br, [port], str(tmp_path / f"{run}.jsonl"), kinds=["arp", "na"])
        lb.run("r1", ["ip", "link", "set", dev, "down"])
        wait_until(lambda: r1.state() == "fault", 3, what="owner in fault on link down")
        lb.run("r1", ["ip", "link", "set", dev, "up"])
        wait_until(lambda: r1.state() == "master", 3, what="owner master again on link up")
        lb.run("c1", ["ip", "neigh", "flush", "dev", c1])
        lb.run("c1", ["ping", f"-{family}", "-c", "2", "-i", "0.2", "-W", "1", own], check=False)
        time.sleep(0.5)
        return obs.stop()

    def speaking(events: list[dict], mac: str) -> list[dict]:
        """Frames from r1 that tell the LAN `own` is at `mac`."""
        if family == 4:
            return [e for e in events if e.get("kind") == "arp" and e["dir"] == "rx"
                    and e["src_ip"] == own and e["sender_mac"] == mac]
        return [e for e in events if e.get("kind") == "na" and e["dir"] == "rx"
                and e["target"] == own and e["src_mac"] == mac]

    events = provoke("filtered")
    assert speaking(events, vmac), events       # the vMAC announces and answers: the capture sees it
    assert not speaking(events, phys), speaking(events, phys)
    lb.run("r1", ["nft", "delete", "table", "arp" if family == 4 else "ip6", "vmacd_owner"])
    events = provoke("unfiltered")
    assert speaking(events, phys), events       # the checker catches the parent's own frames
    r1.stop()                                   # SIGTERM: vmacd deletes what it created
    assert "vmacd_owner" not in lb.run("r1", ["nft", "list", "tables"]).stdout
