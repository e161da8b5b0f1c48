"""The address owner (priority 255, its VIP is its own address): it takes over at startup
without waiting, preempts even with preempt = false, advertises 255, and only its vMAC answers ARP
for the address — the parent's own answer is filtered (table `arp vmacd_owner`)."""
from __future__ import annotations

import re
import time

import pytest

from vmaclab import impls
from vmaclab.observe import Observer, bridge_ports
from vmaclab.util import wait_until

VMAC4 = "00:00:5e:00:01:33"


def _owner_router(lab, node: str, prio: int, preempt: bool = True):
    own = lab.addr("r1", "lan")

    class Owner(impls.get("vmacd")):
        def render(self) -> str:
            return super().render().replace(f'"{lab.vip("lan")}/24"', f'"{own}/24"')

    return Owner().configure(lab, node, "lan", 51, own, prio, 100, preempt=preempt)


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
