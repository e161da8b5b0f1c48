"""Deterministic scenarios on the virtual LAN, exact to the fake clock."""
from __future__ import annotations

import pytest
from simnet import NodeSpec, Sim, make_params

from vmacd.core import timers
from vmacd.core.events import Maintenance, Shutdown, Startup, TrackChanged
from vmacd.core.fsm import State

DELAY = 0.002


def lan(prios: dict[str, int], vrids=(1,), **kw) -> Sim:
    specs = [NodeSpec(n, i + 1, {v: make_params(i + 1, v, priority=p, **kw) for v in vrids})
             for i, (n, p) in enumerate(prios.items())]
    return Sim(specs, delay=DELAY)


def booted(prios, until=10.0, **kw) -> Sim:
    sim = lan(prios, **kw)
    sim.at(0.0, sim.start_all)
    sim.run_until(until)
    return sim


def skew(prio, interval=100):
    return timers.seconds(timers.skew_time_cs(prio, interval))


def mdi(prio, interval=100):
    return timers.seconds(timers.master_down_interval_cs(prio, interval))


@pytest.mark.rfc("9568-6.1-7", "holds")
def test_cold_start_highest_priority_wins_first():
    sim = booted({"r1": 200, "r2": 100, "r3": 150})
    claim = sim.first_claim_after(1, 0.0)
    assert (claim.node, claim.time) == ("r1", mdi(200))
    assert sim.masters(1) == ["r1"]


@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.999])
def test_master_crash_failover_exactly_one_down_interval(phase):
    sim = booted({"r1": 200, "r2": 100, "r3": 150})
    t_crash = 20.0 + phase
    sim.at(t_crash, lambda: sim.crash("r1"))
    sim.run_until(40.0)
    last = max(t for t, n, v, p in sim.adverts if n == "r1" and t <= t_crash)
    claim = sim.first_claim_after(1, t_crash)
    assert claim.node == "r3"
    assert claim.time == pytest.approx(last + DELAY + mdi(150), abs=1e-9)
    assert claim.time <= t_crash + DELAY + mdi(150)
    assert sim.masters(1) == ["r3"]


@pytest.mark.rfc("9568-6.4.2-12", "holds")
@pytest.mark.parametrize("mode", ["rfc", "make-before-break"])
def test_priority_zero_hands_over_within_skew(mode):
    sim = booted({"r1": 200, "r2": 100, "r3": 150}, graceful_handover=mode)
    sim.at(20.3, lambda: sim.feed("r1", 1, Shutdown()))
    sim.run_until(40.0)
    claim = sim.first_claim_after(1, 20.3, exclude="r1")
    assert claim.node == "r3"
    assert claim.time == pytest.approx(20.3 + DELAY + skew(150), abs=1e-9)
    release = next(x for x in sim.trace if x.node == "r1" and x.what == "release")
    if mode == "rfc":
        assert release.time == 20.3                       # gap = delay + skew
    else:
        # make-before-break: r1 lets go only after r3's first advert reached it: no gap
        assert release.time == pytest.approx(claim.time + DELAY, abs=1e-9)
    assert sim.masters(1) == ["r3"] and sim.nodes["r1"].routers[1].state is State.STOPPED


def test_make_before_break_bounded_when_priority_zero_is_lost():
    sim = booted({"r1": 200, "r2": 100}, graceful_handover="make-before-break")
    sim.at(20.3, lambda: setattr(sim, "loss", 1.0))
    sim.at(20.3, lambda: sim.feed("r1", 1, Shutdown()))
    sim.at(20.31, lambda: setattr(sim, "loss", 0.0))
    sim.run_until(40.0)
    release = next(x for x in sim.trace if x.node == "r1" and x.what == "release")
    claim = sim.first_claim_after(1, 20.3, exclude="r1")
    assert claim.time <= release.time <= 20.3 + timers.seconds(timers.handover_bound_cs(100))
    assert sim.masters(1) == ["r2"]


def test_preempt_off_live_master_not_displaced():
    sim = lan({"r1": 100, "r2": 200}, preempt=False)
    sim.at(0.0, lambda: sim.feed("r1", 1, Startup()))
    sim.at(8.0, lambda: sim.feed("r2", 1, Startup()))
    sim.run_until(60.0)
    assert sim.masters(1) == ["r1"]
    assert not [x for x in sim.trace if x.node == "r2" and x.what == "claim"]


def test_preempt_on_higher_joiner_takes_over_within_its_down_interval():
    sim = lan({"r1": 100, "r2": 200})
    sim.at(0.0, lambda: sim.feed("r1", 1, Startup()))
    sim.at(8.0, lambda: sim.feed("r2", 1, Startup()))
    sim.run_until(30.0)
    claim = sim.first_claim_after(1, 8.0)
    assert claim.node == "r2" and claim.time <= 8.0 + mdi(200) + 1e-9
    assert sim.masters(1) == ["r2"]


def test_partition_heals_in_one_advert_round():
    sim = booted({"r1": 200, "r2": 100})
    sim.at(20.0, lambda: sim.partition.update({"r1": 1}))
    sim.run_until(30.0)
    assert sorted(sim.masters(1)) == ["r1", "r2"]              # split brain while cut
    sim.at(30.0, lambda: sim.partition.clear())
    sim.run_until(31.0 + 2 * DELAY)
    assert sim.masters(1) == ["r1"]


def test_tracking_weight_moves_mastership_and_back():
    sim = booted({"r1": 200, "r2": 150})
    sim.at(20.0, lambda: sim.feed("r1", 1, TrackChanged("uplink", up=False, weight=-100)))
    sim.run_until(30.0)
    assert sim.masters(1) == ["r2"]
    sim.at(30.0, lambda: sim.feed("r1", 1, TrackChanged("uplink", up=True, weight=-100)))
    sim.run_until(40.0)
    assert sim.masters(1) == ["r1"]


def test_maintenance_drains_without_gap():
    sim = booted({"r1": 200, "r2": 100})
    sim.at(20.0, lambda: sim.feed("r1", 1, Maintenance(True)))
    sim.run_until(40.0)
    assert sim.masters(1) == ["r2"]
    release = next(x for x in sim.trace if x.node == "r1" and x.what == "release")
    assert sim.first_claim_after(1, 20.0, exclude="r1").time < release.time


def test_sync_group_fails_over_together():
    specs = [NodeSpec(n, i + 1, {v: make_params(i + 1, v, priority=p) for v in (1, 2)},
                      sync_group=True) for i, (n, p) in enumerate({"r1": 200, "r2": 100}.items())]
    sim = Sim(specs, delay=DELAY)
    sim.at(0.0, sim.start_all)
    sim.at(20.0, lambda: sim.feed("r1", 1, TrackChanged("svc", up=False, weight=0)))
    sim.run_until(30.0)
    assert sim.masters(1) == ["r2"] and sim.masters(2) == ["r2"]
    assert sim.nodes["r1"].routers[2].state is State.FAULT
    sim.at(30.0, lambda: sim.feed("r1", 1, TrackChanged("svc", up=True, weight=0)))
    sim.run_until(45.0)
    assert sim.masters(1) == ["r1"] and sim.masters(2) == ["r1"]


@pytest.mark.rfc("9568-6.4-1", "holds")
def test_several_vrids_elect_independently():
    specs = [NodeSpec("r1", 1, {1: make_params(1, 1, priority=200), 2: make_params(1, 2, priority=50)}),
             NodeSpec("r2", 2, {1: make_params(2, 1, priority=100), 2: make_params(2, 2, priority=150)})]
    sim = Sim(specs, delay=DELAY)
    sim.at(0.0, sim.start_all)
    sim.run_until(15.0)
    assert sim.masters(1) == ["r1"] and sim.masters(2) == ["r2"]


@pytest.mark.rfc("9568-6.4.2-5", "refused")
def test_invariant_checker_catches_a_router_that_claims_in_backup():
    from simnet import InvariantError

    from vmacd.core.events import ClaimVips

    sim = booted({"r1": 200, "r2": 100})
    r2 = sim.nodes["r2"].routers[1]
    broken = lambda ev, now: [ClaimVips(1, 4, r2.params.vips)]
    r2.handle = broken
    with pytest.raises(InvariantError, match="claims VIPs in state backup"):
        sim.feed("r2", 1, Startup())


def test_invariant_checker_catches_priority_zero_from_a_backup():
    from simnet import InvariantError

    from vmacd.core.events import SendAdvert

    sim = booted({"r1": 200, "r2": 100})
    r2 = sim.nodes["r2"].routers[1]
    r2.handle = lambda ev, now: [SendAdvert(1, 3, 4, 0, 100, r2.params.vips)]
    with pytest.raises(InvariantError, match="priority 0 while backup"):
        sim.feed("r2", 1, Startup())
