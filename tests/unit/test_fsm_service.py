"""core/fsm.py: the rules around a service cluster and operations — resource failures and their
hold, maintenance that refuses to leave the VIP masterless, dual-master counting, the repeated-
advert shortcut, in-place parameter changes and exclusive resources stopped before a handover."""
from __future__ import annotations

import ipaddress as ip
from dataclasses import replace

import pytest

from vmacd.core.events import (
    AdvertReceived,
    ClaimVips,
    ClearFailures,
    DualMaster,
    HandoverDone,
    Maintenance,
    ParamsChanged,
    ReleaseVips,
    ResourceFailed,
    ResourcesStopped,
    RunResources,
    SendAdvert,
    Shutdown,
    Startup,
    StateChanged,
    Stopped,
)
from vmacd.core.fsm import LocalProtocolError, RouterParams, State, VirtualRouter
from vmacd.core.proto import Advertisement

A = ip.ip_address
VIPS = (A("192.0.2.254"),)
MDI = 3.609375              # priority 100 at 100 cs


def params(**kw) -> RouterParams:
    kw.setdefault("primary", A("192.0.2.2"))
    kw.setdefault("vips", VIPS)
    return RouterParams(vrid=5, **kw)


def adv(prio: int, src: str = "192.0.2.9", interval: int = 100) -> AdvertReceived:
    return AdvertReceived(Advertisement(3, 5, prio, interval, VIPS, src=A(src)))


def backup(**kw) -> VirtualRouter:
    r = VirtualRouter(params(**kw))
    r.handle(Startup(), 0.0)
    r.handle(adv(200), 0.5)
    assert r.state is State.BACKUP and r.master_seen is not None
    return r


def master(**kw) -> VirtualRouter:
    r = VirtualRouter(params(**kw))
    r.handle(Startup(), 0.0)
    r.handle_timer(r.get_timer())
    assert r.state is State.MASTER
    return r


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def sent(actions) -> list[int]:
    return [a.priority for a in actions if isinstance(a, SendAdvert)]


def done(actions) -> HandoverDone:
    found = [a for a in actions if isinstance(a, HandoverDone)]
    assert len(found) == 1, actions
    return found[0]


# --- resource failures -------------------------------------------------------------------------

def test_a_failed_resource_hands_over_make_before_break_and_holds_out():
    r = master()
    now = r.get_timer() or 0.0
    out = r.handle(ResourceFailed("httpd", "monitor", hold=60.0), now)
    assert sent(out) == [0] and r.state is State.MASTER and r.leaving    # VIPs kept
    out = r.handle(adv(50), now + 0.2)                                   # the successor
    assert r.state is State.BACKUP
    assert kinds(out)[:3] == ["StateChanged", "ReleaseVips", "RunResources"]
    assert r.snapshot()["timers"]["master_down"] is None                 # held out
    assert r.get_timer() == pytest.approx(now + 60.0)
    r.handle_timer(now + 60.0)                                           # failure_timeout ends
    assert not r.failed and r.snapshot()["timers"]["master_down"] == pytest.approx(now + 60 + MDI)


def test_a_held_backup_never_claims_even_when_the_master_dies():
    r = backup()
    r.handle(ResourceFailed("httpd", "start", hold=0.0), 1.0)            # until cleared
    assert r.get_timer() is None
    assert r.handle_timer(100.0) == [] and r.state is State.BACKUP
    r.handle(ClearFailures(), 100.0)
    assert r.get_timer() == pytest.approx(100.0 + MDI)
    r.handle_timer(100.0 + MDI)
    assert r.state is State.MASTER


def test_failures_on_every_node_cannot_ping_pong_faster_than_the_hold():
    r = master()
    r.handle(ResourceFailed("httpd", "start", hold=30.0), 5.0)
    r.handle_timer(r.get_timer())                                       # nobody took over
    assert r.state is State.BACKUP and r.get_timer() == pytest.approx(35.0)
    r.handle_timer(35.0)
    assert r.state is State.BACKUP and r.get_timer() == pytest.approx(35.0 + MDI)


# --- maintenance ------------------------------------------------------------------------------

def test_maintenance_refused_on_a_backup_that_hears_no_master():
    r = VirtualRouter(params())
    r.handle(Startup(), 0.0)
    d = done(r.handle(Maintenance(True), 1.0))
    assert not d.ok and "without a master" in d.detail and not r.maintenance
    assert done(r.handle(Maintenance(True, force=True), 1.0)).ok and r.maintenance


def test_maintenance_on_the_last_master_is_refused_after_the_handover_bound():
    r = master()
    t = r.get_timer() or 0.0
    assert sent(r.handle(Maintenance(True), t)) == [0]
    assert r.snapshot()["effective_priority"] == 0                     # shown while draining
    out = r.handle_timer(r.get_timer())                                # nobody took over
    assert not done(out).ok and r.state is State.MASTER and not r.maintenance
    assert sent(out) == [100] and r.snapshot()["effective_priority"] == 100


def test_maintenance_with_a_successor_completes():
    r = master()
    t = r.get_timer() or 0.0
    r.handle(Maintenance(True), t)
    out = r.handle(adv(50), t + 0.1)
    assert done(out).ok and r.state is State.BACKUP and r.maintenance
    assert r.snapshot()["effective_priority"] == 0


# --- dual masters -------------------------------------------------------------------------------

def test_an_ordinary_preemption_is_not_a_dual_master():
    r = master()
    out = r.handle(adv(200), 5.0)
    assert r.state is State.BACKUP and not [a for a in out if isinstance(a, DualMaster)]


def test_a_lower_master_that_does_not_yield_is_counted_once():
    r = master(priority=150)
    first = r.handle(adv(100), 5.0)                    # answered at once (§6.4.3-14)
    assert sent(first) == [150] and not [a for a in first if isinstance(a, DualMaster)]
    again = r.handle(adv(100), 6.0)                    # one interval later: it did not yield
    assert [a for a in again if isinstance(a, DualMaster)]
    assert not [a for a in r.handle(adv(100), 7.0) if isinstance(a, DualMaster)]


# --- repeated adverts -------------------------------------------------------------------------

def test_repeat_moves_the_deadline_like_a_full_accept():
    r = backup()
    assert r.repeat_ok
    assert r.repeat(2.0) and r.get_timer() == pytest.approx(2.0 + MDI)
    r.handle(Maintenance(True), 3.0)
    assert not r.repeat(4.0)                           # any other input ends the shortcut


def test_repeat_arms_no_takeover_while_drained():
    r = backup()
    r.handle(Maintenance(True), 2.0)
    r.handle(adv(100), 2.1)                            # accepted: the master is heard
    assert r.repeat_ok and r.get_timer() is None
    assert r.repeat(2.2) and r.get_timer() is None     # as the full handling: nothing to claim
    assert r.handle_timer(60.0) == [] and r.state is State.BACKUP


def test_repeat_does_not_stand_for_a_discarded_advert():
    r = VirtualRouter(params(priority=200))
    r.handle(Startup(), 0.0)
    r.handle(adv(100), 0.5)                            # lower: discarded, we will preempt
    assert not r.repeat_ok and not r.repeat(0.6)


# --- reload in place --------------------------------------------------------------------------

def test_params_changed_on_a_master_advertises_at_once_without_a_transition():
    r = master()
    t = (r.get_timer() or 0.0) - 0.5
    vips = (A("192.0.2.254"), A("192.0.2.253"))
    out = r.handle(ParamsChanged(replace(r.params, priority=120, vips=vips)), t)
    assert not [a for a in out if isinstance(a, StateChanged)]
    assert sent(out) == [120] and any(isinstance(a, ClaimVips) and a.addresses == vips for a in out)
    assert r.state is State.MASTER and len(r.history) == 2


def test_params_changed_refuses_what_needs_a_restart():
    r = master()
    with pytest.raises(LocalProtocolError):
        r.handle(ParamsChanged(replace(r.params, vrid=6)), 1.0)


# --- exclusive resources ---------------------------------------------------------------------

def test_exclusive_resources_stop_before_priority_zero():
    r = master(stop_before_leave=True)
    t = r.get_timer() or 0.0
    out = r.handle(Shutdown("SIGTERM"), t)
    assert out == [RunResources("stop")] or kinds(out)[0] == "RunResources"
    assert sent(out) == [] and r.get_timer() is not None               # still advertising
    assert sent(r.handle_timer(r.get_timer())) == [100]
    out = r.handle(ResourcesStopped(), t + 0.5)
    assert sent(out) == [0] and r.leaving
    out = r.handle(adv(50), t + 0.6)
    assert r.state is State.STOPPED and any(isinstance(a, Stopped) for a in out)
    assert any(isinstance(a, ReleaseVips) for a in out)


def _preempting(**kw) -> tuple[VirtualRouter, float, list]:
    """A backup (priority 200) that hears a live lower master (100) and preempts it."""
    r = VirtualRouter(params(priority=200, **kw))
    r.handle(Startup(), 0.0)
    r.handle(adv(100), 0.5)                        # lower: discarded, we will preempt
    t = r.get_timer() or 0.0
    out = r.handle_timer(t)
    assert r.state is State.MASTER and any(isinstance(a, ClaimVips) for a in out)
    return r, t, out


def test_a_preempting_master_starts_exclusive_resources_only_once_the_old_master_let_go():
    r, t, out = _preempting(stop_before_leave=True)
    assert RunResources("start") not in out            # the old master may still hold the disk
    assert r.snapshot()["timers"]["resources_start"] is not None
    out = r.handle(adv(100), t + 0.5)                 # still advertising: its resources stop
    assert sent(out) == [200] and not any(isinstance(a, (DualMaster, RunResources)) for a in out)
    assert RunResources("start") in r.handle(adv(0), t + 0.8)     # priority 0: it let go
    assert r.snapshot()["timers"]["resources_start"] is None


def test_the_preempted_master_falling_silent_starts_the_resources_after_its_down_interval():
    r, t, _out = _preempting(stop_before_leave=True)
    r.handle(adv(100), t + 0.5)
    deadline = r.get_timer()
    mdi_100 = 3 * 1.0 + (256 - 200) / 256              # its interval, our priority's skew
    assert r.snapshot()["timers"]["resources_start"] == pytest.approx(t + 0.5 + mdi_100)
    while deadline is not None and deadline < t + 0.5 + mdi_100 - 1e-9:
        assert RunResources("start") not in r.handle_timer(deadline)
        deadline = r.get_timer()
    assert RunResources("start") in r.handle_timer(t + 0.5 + mdi_100)


def test_preemption_without_exclusive_resources_starts_them_at_once():
    _r, _t, out = _preempting()
    assert RunResources("start") in out


def test_a_takeover_after_priority_zero_starts_exclusive_resources_at_once():
    r = VirtualRouter(params(priority=200, stop_before_leave=True))
    r.handle(Startup(), 0.0)
    r.handle(adv(100), 0.5)
    r.handle(adv(0), 0.6)                              # it let go before our timer fired
    out = r.handle_timer(r.get_timer() or 0.0)
    assert r.state is State.MASTER and RunResources("start") in out


def test_a_preempted_master_with_exclusive_resources_stops_them_before_it_yields():
    r = master(stop_before_leave=True)
    t = r.get_timer() or 0.0
    out = r.handle(adv(200), t)                        # a higher priority preempts us
    assert r.state is State.MASTER and r.leaving and RunResources("stop") in out
    assert not any(isinstance(a, ReleaseVips) for a in out)
    assert r.handle(adv(200), t + 0.1) == []          # no yielding before the disk is free
    assert sent(r.handle_timer(r.get_timer())) == [100]            # still advertising
    out = r.handle(ResourcesStopped(), t + 1.5)
    assert sent(out) == [0]
    out = r.handle(adv(200), t + 1.6)
    assert r.state is State.BACKUP and any(isinstance(a, ReleaseVips) for a in out)


def test_an_ordinary_master_yields_to_a_higher_priority_at_once():
    r = master()
    out = r.handle(adv(200), r.get_timer() or 0.0)
    assert r.state is State.BACKUP and any(isinstance(a, StateChanged) for a in out)
