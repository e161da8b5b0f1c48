"""core/fsm.py: vmacd's rules beyond RFC 9568 §6.4 (fault, maintenance, make-before-break,
startup_delay, preempt_delay, tracking)."""
from __future__ import annotations

import ipaddress as ip

import pytest

from vmacd.core.events import (
    AdvertReceived,
    ClaimVips,
    Drop,
    LinkChanged,
    Maintenance,
    PrimaryChanged,
    ReleaseVips,
    SendAdvert,
    Shutdown,
    Startup,
    Stopped,
    TrackChanged,
)
from vmacd.core.fsm import RouterParams, State, VirtualRouter
from vmacd.core.wire import Advertisement

A = ip.ip_address
VIPS = (A("192.0.2.254"),)
MDI_100 = 3.609375
BOUND = 3.99609375          # handover bound: MDI of priority 1 at 100 cs


def make(start: bool = True, **kw) -> VirtualRouter:
    kw.setdefault("primary", A("192.0.2.2"))
    kw.setdefault("vips", VIPS)
    r = VirtualRouter(RouterParams(vrid=5, **kw))
    if start:
        r.handle(Startup(), 0.0)
    return r


def master(**kw) -> VirtualRouter:
    r = make(**kw)
    r.handle_timer(r.get_timer())
    return r


def adv(prio=200, src="192.0.2.9"):
    return AdvertReceived(Advertisement(3, 5, prio, 100, VIPS, src=A(src)))


def sent(out):
    return [a.priority for a in out if isinstance(a, SendAdvert)]


def has(out, kind):
    return any(isinstance(a, kind) for a in out)


# -- make-before-break (a departure from §6.4.3-10; "rfc" mode is tested in test_fsm) -----------

def test_make_before_break_keeps_vips_until_successor_heard():
    r = master()
    out = r.handle(Shutdown(), 10.0)
    assert sent(out) == [0] and not has(out, ReleaseVips)
    assert r.state is State.MASTER and r.leaving and r.holds_vips
    assert r.handle(adv(0, src="192.0.2.7"), 10.1) == []         # another leaver: not a successor
    assert r.handle_timer(11.0) == []                              # no periodic adverts meanwhile
    out = r.handle(adv(50), 10.7)                                  # the successor, any prio > 0
    assert has(out, ReleaseVips) and out[-1] == Stopped() and r.state is State.STOPPED


def test_make_before_break_is_bounded():
    r = master()
    r.handle(Shutdown(), 10.0)
    assert r.get_timer() == 10.0 + BOUND
    out = r.handle_timer(10.0 + BOUND)
    assert has(out, ReleaseVips) and out[-1] == Stopped()


def test_fault_during_handover_releases_at_once():
    r = master()
    r.handle(Shutdown(), 10.0)
    out = r.handle(LinkChanged(False), 10.2)
    assert has(out, ReleaseVips) and r.state is State.STOPPED and out[-1] == Stopped()


# -- maintenance -----------------------------------------------------------------------------

def test_maintenance_master_hands_over_and_never_claims():
    r = master()
    assert sent(r.handle(Maintenance(True), 5.0)) == [0]
    r.handle(adv(90), 5.7)
    assert r.state is State.BACKUP and r.get_timer() is None
    r.handle(adv(0), 8.0)                                          # even a leaving master
    assert r.get_timer() is None
    for t in range(9, 30):
        assert not has(r.handle_timer(float(t)), ClaimVips)
    r.handle(Maintenance(False), 30.0)
    assert r.get_timer() == 30.0 + MDI_100


def test_maintenance_off_during_handover_cancels_it():
    r = master()
    r.handle(Maintenance(True), 5.0)
    out = r.handle(Maintenance(False), 5.2)
    assert sent(out) == [100] and r.state is State.MASTER and not r.leaving
    assert r.get_timer() == 6.2


def test_maintenance_before_startup_keeps_owner_from_claiming():
    r = make(start=False, priority=255)
    r.handle(Maintenance(True), 0.0)
    r.handle(Startup(), 0.0)
    assert r.state is State.BACKUP and r.get_timer() is None


# -- fault -------------------------------------------------------------------------------------

def test_weight_zero_tracker_faults_master_with_one_priority_zero():
    r = master()
    out = r.handle(TrackChanged("httpd", up=False, weight=0), 5.0)
    assert sent(out) == [0] and has(out, ReleaseVips) and r.state is State.FAULT
    assert r.get_timer() is None and r.handle(adv(10), 6.0) == []
    r.handle(TrackChanged("httpd", up=True, weight=0), 7.0)
    assert r.state is State.BACKUP and r.get_timer() == 7.0 + MDI_100


def test_link_down_master_releases_without_sending():
    r = master()
    out = r.handle(LinkChanged(False), 5.0)
    assert sent(out) == [] and has(out, ReleaseVips) and r.state is State.FAULT
    r.handle(LinkChanged(True), 6.0)
    assert r.state is State.BACKUP


def test_losing_the_address_faults_and_a_new_one_brings_it_back():
    r = master()                                  # priority 100, primary 192.0.2.2
    out = r.handle(PrimaryChanged(None), 5.0)
    assert sent(out) == [0] and has(out, ReleaseVips) and r.state is State.FAULT
    assert r.history[-1].reason == "no address to advertise from"
    r.handle(PrimaryChanged(A("192.0.2.5")), 6.0)
    assert r.state is State.BACKUP and r.params.primary == A("192.0.2.5")


def test_renumbered_primary_is_the_new_tie_break_and_own_address():
    r = master()
    r.handle(PrimaryChanged(A("192.0.2.20")), 5.0)
    assert r.state is State.MASTER                # same address family, still master
    r.handle(adv(100, src="192.0.2.9"), 5.1)      # equal priority, now from a lower address
    assert r.state is State.MASTER
    out = r.handle(adv(100, src="192.0.2.20"), 5.2)   # our own new address: not a peer
    assert [a.reason for a in out if isinstance(a, Drop)] == ["addresses"]
    r2 = master()
    r2.handle(adv(100, src="192.0.2.9"), 5.1)     # the old primary 192.0.2.2 lost that tie
    assert r2.state is State.BACKUP


def test_owner_recovers_straight_to_master():
    r = master(priority=255)
    r.handle(LinkChanged(False), 5.0)
    out = r.handle(LinkChanged(True), 6.0)
    assert r.state is State.MASTER and sent(out) == [255]


def test_startup_with_link_down_is_fault():
    r = make(start=False)
    r.handle(LinkChanged(False), 0.0)
    r.handle(Startup(), 0.0)
    assert r.state is State.FAULT and r.snapshot()["faults"] == ["link down"]


# -- startup_delay / preempt_delay ---------------------------------------------------------------

def test_startup_delay_holds_back_a_silent_box():
    r = make(startup_delay=10.0)
    assert r.get_timer() == 10.0
    r.handle(adv(0), 2.0)
    assert r.get_timer() == 10.0
    r.handle_timer(10.0)
    assert r.state is State.MASTER


def test_startup_delay_owner_waits_then_preempts():
    r = make(priority=255, startup_delay=5.0)
    assert r.state is State.BACKUP
    r.handle(adv(100), 1.0)
    r.handle_timer(5.0)
    assert r.state is State.MASTER


def test_preempt_delay_accepts_lower_master_for_that_long():
    r = make(priority=150, preempt_delay=5.0)
    t = 1.0
    while t < 6.0:                                  # accepted: timer keeps moving
        r.handle(adv(100), t)
        assert r.get_timer() == t + 3.0 + 106 / 256
        t += 1.0
    r.handle(adv(100), 6.0)                         # 5 s after the first: discarded from now on
    assert r.get_timer() == 5.0 + 3.0 + 106 / 256
    r.handle_timer(r.get_timer())
    assert r.state is State.MASTER


def test_preempt_delay_run_restarts_on_higher_advert():
    r = make(priority=150, preempt_delay=5.0)
    r.handle(adv(100), 1.0)
    r.handle(adv(200), 4.0)
    r.handle(adv(100), 5.5)
    assert r.snapshot()["preempt_lower_since"] == 5.5


# -- tracking -> effective priority (RFC 9568 §5.2.4) ---------------------------------------------

@pytest.mark.rfc("9568-5.2.4-2", "holds")
@pytest.mark.rfc("9568-5.2.4-2", "refused")
@pytest.mark.parametrize("up, weight, want", [(False, -500, 1), (True, 500, 254), (False, -99, 1),
                                              (True, 154, 254), (False, -10, 90)])
def test_tracking_clamps_sent_priority(up, weight, want):
    r = master()
    r.handle(TrackChanged("x", up, weight), 5.0)
    assert sent(r.handle_timer(r.get_timer())) == [want]


@pytest.mark.rfc("9568-5.2.4-1", "refused")
def test_tracking_never_moves_owner_off_255():
    r = master(priority=255)
    r.handle(TrackChanged("x", False, -100), 5.0)
    assert sent(r.handle_timer(r.get_timer())) == [255]


def test_snapshot_shape():
    snap = master().snapshot()
    assert snap["state"] == "master" and snap["effective_priority"] == 100
    assert snap["last_transition"]["new"] == "master"
    assert snap["timers"]["adver"] == MDI_100 + 1.0
