"""vmacd election: by priority among three routers, by primary address when
priorities tie, and what a returning higher-priority router does with preempt on, off and delayed.
The winner is checked in the kernel (VIP and UP vMAC on exactly one box) and on the LAN (the
bridge learned the vMAC on its port), not only in the daemon's own status.
"""
from __future__ import annotations

import time

import pytest
from daemon_util import (
    VMAC4,
    failover_bound_s,
    fdb_ports,
    fleet,
    port,
    sleep_observing,
    up_links_with_mac,
    vip_holders,
)
from vmaclab.faults import fault
from vmaclab.util import wait_until

__all__ = ["fleet"]
TOPO = "trio"


def _only_master_is(lab, node: str) -> None:
    """*node* and no other router holds the VIP on an UP vMAC; the bridge agrees."""
    assert vip_holders(lab, lab.vip("lan")) == [node]
    assert [n for n in lab.topo.routers() if up_links_with_mac(lab, n, VMAC4)] == [node]
    wait_until(lambda: fdb_ports(lab, VMAC4) == [port(lab, node)], 2.0,
               what=f"vMAC on {node}'s bridge port (have {fdb_ports(lab, VMAC4)})")


def test_priority_200_150_100(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r3", 100), ("r2", 150), ("r1", 200)], master="r1")
    _only_master_is(lab, "r1")
    # the master goes away: of the two backups the higher priority (150) wins, not the other
    fault(lab, rs["r1"], "term")
    wait_until(lambda: (rs["r2"].state(), rs["r3"].state()) == ("master", "backup"),
               failover_bound_s(150), what="r2 (150) over r3 (100)")
    sleep_observing(0.5)
    assert (rs["r2"].state(), rs["r3"].state()) == ("master", "backup")
    _only_master_is(lab, "r2")


def test_equal_priority_higher_address_wins(fleet) -> None:
    """r1 (.11) and r3 (.13) at 100 are split so both become master; once the LAN heals, the
    higher primary address keeps it and the other yields (one round: well within the failover
    bound)."""
    lab = fleet.lab
    fault(lab, None, "partition", a=["r1"], b=["r3"])
    r1 = fleet.start("r1", 100)
    r3 = fleet.start("r3", 100)
    wait_until(lambda: (r1.state(), r3.state()) == ("master", "master"), 5.0, what="split brain")
    fault(lab, None, "heal")
    wait_until(lambda: (r1.state(), r3.state()) == ("backup", "master"), failover_bound_s(100),
               what="r3 (higher address) master after heal")
    sleep_observing(0.5)
    assert (r1.state(), r3.state()) == ("backup", "master")
    _only_master_is(lab, "r3")


def _return_of_r1(fleet, **kw):
    """r1 (200) master over r2 (100); r1 stops (SIGTERM) and r2 takes over; r1 starts again.
    Returns (r1 again once it runs an instance, r2, monotonic time r1's instance ran)."""
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1", **kw)
    fault(fleet.lab, rs["r1"], "term")
    wait_until(lambda: rs["r2"].state() == "master", failover_bound_s(100), what="r2 master")
    wait_until(lambda: rs["r1"].proc.poll() is not None, 3.0, what="r1 gone")
    r1 = fleet.start("r1", 200, **kw)
    wait_until(lambda: r1.state() in ("backup", "master"), 10.0, what="r1 running again")
    return r1, rs["r2"], time.monotonic()


def test_preempt_on_returning_higher_priority_takes_over(fleet) -> None:
    r1, r2, _t0 = _return_of_r1(fleet, preempt=True)
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), failover_bound_s(200),
               what="r1 preempts")
    _only_master_is(fleet.lab, "r1")


@pytest.mark.rfc("9568-7.1-7", "holds")     # r1 stays backup only by accepting r2's VRID 51 adverts
def test_preempt_off_returning_higher_priority_stays_backup(fleet) -> None:
    r1, r2, _t0 = _return_of_r1(fleet, preempt=False)
    wait_until(lambda: r1.state() == "backup", 5.0, what="r1 backup")
    sleep_observing(1.5)                  # > 4 Master_Down_Intervals of chances to preempt
    assert [s for _, s in r1.history if s == "master"] == [], r1.history
    assert (r1.state(), r2.state()) == ("backup", "master")
    _only_master_is(fleet.lab, "r2")


def test_preempt_delay_takes_over_only_after_the_delay(fleet) -> None:
    delay = 1.5
    r1, r2, t0 = _return_of_r1(fleet, preempt=True, preempt_delay=f"{delay}s")
    wait_until(lambda: r1.state() == "master", delay + 4.0, interval=0.01, what="r1 preempts")
    took = time.monotonic() - t0
    print(f"\npreempt_delay {delay}s: r1 took over {took:.2f} s after it started")
    # lower bound: the delay (its count starts with the first advert r1 hears, at or after
    # start-up); upper: the delay and then r1's own failover bound
    assert delay - 0.2 <= took <= delay + failover_bound_s(200), took
    wait_until(lambda: r2.state() == "backup", 2.0, what="r2 backup")
    _only_master_is(fleet.lab, "r1")
