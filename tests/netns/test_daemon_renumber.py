"""The parent's address changes under a running vmacd (renumbering, a DHCP lease): the master
keeps its mastership and advertises from the new address at once; with no address left it
cannot advertise, so it goes to fault and the backup takes over; an address back, it returns."""
from __future__ import annotations

import pytest
from daemon_util import (
    VMAC4,
    capture,
    failover_bound_s,
    fleet,
    port,
    sent_from,
    sleep_observing,
)
from vmaclab.util import wait_until

__all__ = ["fleet"]


def _master_src(r) -> str | None:
    st = r.status()
    inst = (st or {}).get("instances") or [{}]
    return (inst[0].get("master") or {}).get("src")


@pytest.mark.rfc("9568-5.1.1.1-1", "holds")       # adverts leave from the primary, old or new
@pytest.mark.rfc("9568-7.2-4", "holds")
def test_renumbered_parent_is_followed_and_no_address_is_a_fault(fleet) -> None:
    lab = fleet.lab
    dev, old = lab.ifname("r1", "lan"), lab.addr("r1", "lan")
    new = "192.0.2.77"
    assert all(new not in (lab.addr(n, "lan"), lab.vip("lan")) for n in lab.topo.members("lan"))
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    wait_until(lambda: _master_src(r2) == old, 2.0, what="r2 hears the master at its address")
    obs = capture(fleet)
    # renumber: the new address first, then the old one goes and the new one is promoted
    lab.run("r1", ["sysctl", "-qw", f"net.ipv4.conf.{dev}.promote_secondaries=1"])
    lab.run("r1", ["ip", "addr", "add", f"{new}/24", "dev", dev])
    lab.run("r1", ["ip", "addr", "del", f"{old}/24", "dev", dev])
    wait_until(lambda: _master_src(r2) == new, 2.0, what="r2 hears the master at the new address")
    sleep_observing(0.5)
    events = obs.stop()
    assert (r1.state(), r2.state()) == ("master", "backup")         # no flap
    adverts = [e for e in sent_from(events, port(lab, "r1"), VMAC4) if e["kind"] == "vrrp"]
    srcs = [e["src_ip"] for e in adverts]
    assert srcs and set(srcs) <= {old, new} and srcs[-1] == new, srcs
    assert srcs == sorted(srcs, key=lambda s: s == new)             # old ones first, then new

    lab.run("r1", ["ip", "addr", "del", f"{new}/24", "dev", dev])   # no IPv4 address left
    wait_until(lambda: (r1.state(), r2.state()) == ("fault", "master"), failover_bound_s(100),
               what="r1 in fault, r2 master")
    reasons = [h["reason"] for h in r1.control({"cmd": "history"})["history"]]
    assert reasons[-1] == "no address to advertise from", reasons
    lab.run("r1", ["ip", "addr", "add", f"{old}/24", "dev", dev])
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5.0,
               what="r1 master again with its address back")
    wait_until(lambda: _master_src(r2) == old, 2.0, what="r2 hears the master at its address")
