"""core/fsm.py: RFC 9568 §6.4 Initialize / Backup / Active, driven by hand on a fake clock."""
from __future__ import annotations

import ipaddress as ip

import pytest

from vmacd.core.events import (
    AdvertReceived,
    Announce,
    ClaimVips,
    MasterSeen,
    PrepareTakeover,
    ReleaseVips,
    SendAdvert,
    Shutdown,
    Startup,
    StateChanged,
    Stopped,
    TrackChanged,
)
from vmacd.core.fsm import LocalProtocolError, RouterParams, State, VirtualRouter
from vmacd.core.wire import Advertisement

A = ip.ip_address
VIPS = (A("192.0.2.254"), A("192.0.2.253"))
MDI_100 = 3.609375          # 360.9375 cs: priority 100 at 100 cs
SKEW_100 = 0.609375         # 60.9375 cs


def params(**kw) -> RouterParams:
    kw.setdefault("primary", A("192.0.2.2"))
    kw.setdefault("vips", VIPS)
    return RouterParams(vrid=kw.pop("vrid", 5), **kw)


def adv(prio: int, src: str = "192.0.2.9", interval: int = 100, vrid: int = 5,
        addresses=VIPS, version: int = 3) -> AdvertReceived:
    return AdvertReceived(Advertisement(version, vrid, prio, interval, tuple(addresses), src=A(src)))


def started(now: float = 0.0, **kw) -> VirtualRouter:
    r = VirtualRouter(params(**kw))
    r.handle(Startup(), now)
    return r


def master(**kw) -> VirtualRouter:
    r = started(**kw)
    r.handle_timer(r.get_timer())
    assert r.state is State.MASTER
    return r


def sent(actions) -> list[int]:
    return [a.priority for a in actions if isinstance(a, SendAdvert)]


# -- Initialize (§6.4.1) -------------------------------------------------------------------------

@pytest.mark.rfc("9568-6.4.1-1", "holds")
def test_initialize_waits_for_startup():
    r = VirtualRouter(params())
    assert r.state is State.INIT and r.get_timer() is None
    assert r.handle(Startup(), 1.0)[0] == StateChanged("init", "backup", "startup", 1.0)


@pytest.mark.rfc("9568-6.4.1-1", "refused")
@pytest.mark.rfc("9568-6.2-1", "refused")
def test_initialize_is_silent_before_startup():
    r = VirtualRouter(params(priority=255))
    for t in range(10):
        assert r.handle(adv(100), float(t)) == []
        assert r.handle_timer(float(t)) == []
    assert r.state is State.INIT and r.get_timer() is None


@pytest.mark.rfc("9568-6.4.1-2", "holds")
@pytest.mark.rfc("9568-6.4.1-5", "holds")
@pytest.mark.rfc("9568-5.2.4-1", "holds")
def test_owner_is_master_at_startup():
    r = VirtualRouter(params(priority=255))
    out = r.handle(Startup(), 2.0)
    assert r.state is State.MASTER
    assert sent(out) == [255]
    assert r.get_timer() == 3.0                      # Adver_Timer = one interval
    assert sent(r.handle_timer(3.0)) == [255]
    assert r.get_timer() == 4.0


@pytest.mark.rfc("9568-6.4.1-2", "refused")
@pytest.mark.rfc("9568-6.4.1-5", "refused")
@pytest.mark.rfc("9568-6.1-8", "refused")
def test_owner_never_waits_in_backup_even_without_preempt():
    r = VirtualRouter(params(priority=255, preempt=False))
    out = r.handle(Startup(), 0.0)
    assert [a.new for a in out if isinstance(a, StateChanged)] == ["master"]
    assert r.snapshot()["timers"]["master_down"] is None


@pytest.mark.rfc("9568-6.4.1-3", "holds")
@pytest.mark.rfc("9568-6.4.1-4", "holds")
@pytest.mark.parametrize("primary, vips", [
    ("192.0.2.2", VIPS), ("fe80::2", (A("fe80::1"), A("2001:db8::1")))])
def test_owner_startup_claims_then_announces_every_vip(primary, vips):
    r = VirtualRouter(params(priority=255, primary=A(primary), vips=vips, garp_repeat=2))
    out = r.handle(Startup(), 0.0)
    kinds = [type(a) for a in out]
    assert kinds.index(ClaimVips) < kinds.index(Announce)     # vMAC + VIP before any GARP/NA
    ann = next(a for a in out if isinstance(a, Announce))
    assert ann.addresses == vips and ann.repeat == 2 and ann.family == A(primary).version


@pytest.mark.rfc("9568-6.4.1-6", "holds")
def test_non_owner_startup_is_backup_with_down_timer():
    r = started(now=10.0)
    assert r.state is State.BACKUP
    assert r.get_timer() == 10.0 + MDI_100
    assert r.master_adver_interval_cs == 100


@pytest.mark.rfc("9568-6.4.1-6", "refused")
@pytest.mark.rfc("9568-6.4.1-3", "refused")
def test_non_owner_startup_sends_and_claims_nothing():
    r = VirtualRouter(params())
    out = r.handle(Startup(), 0.0)
    assert not [a for a in out if isinstance(a, (SendAdvert, ClaimVips, Announce))]


# -- Timers (§6.1, §6.2) -------------------------------------------------------------------------

@pytest.mark.rfc("9568-6.2-1", "holds")
def test_exactly_the_right_timer_after_every_transition():
    def armed(r):
        t = r.snapshot()["timers"]
        return {k for k, v in t.items() if v is not None}
    r = VirtualRouter(params())
    assert armed(r) == set()
    r.handle(Startup(), 0.0)
    assert armed(r) == {"master_down"}
    r.handle_timer(r.get_timer())
    assert armed(r) == {"adver"}
    r.handle(adv(200), 5.0)
    assert armed(r) == {"master_down"}
    r.handle(Shutdown(), 6.0)
    assert armed(r) == set()


@pytest.mark.rfc("9568-6.1-7", "holds")
@pytest.mark.rfc("9568-6.4.2-7", "holds")
def test_takeover_exactly_at_master_down_interval():
    r = started()
    assert r.handle_timer(3.60) == []                      # 360 cs: not yet
    assert r.state is State.BACKUP
    out = r.handle_timer(MDI_100)
    assert r.state is State.MASTER and sent(out) == [100]


@pytest.mark.rfc("9568-6.1-7", "refused")
@pytest.mark.rfc("9568-6.4.2-7", "refused")
def test_no_advert_one_centisecond_early():
    r = started()
    assert r.handle_timer(MDI_100 - 0.01) == [] and r.state is State.BACKUP


@pytest.mark.rfc("9568-6.1-5", "holds")
@pytest.mark.rfc("9568-6.4.2-13", "holds")
def test_backup_learns_master_interval():
    r = started()
    r.handle(adv(200, interval=50), 1.0)
    assert r.master_adver_interval_cs == 50
    # 3 * 50 + (256 - 100) * 50 / 256 = 180.46875 cs
    assert r.get_timer() == 1.0 + 1.8046875


@pytest.mark.rfc("9568-6.1-5", "refused")
@pytest.mark.rfc("9568-6.4.2-13", "refused")
def test_backup_does_not_keep_own_interval_after_hearing_another():
    r = started()
    r.handle(adv(200, interval=50), 1.0)
    assert r.get_timer() != 1.0 + MDI_100
    assert r.snapshot()["master_down_interval_cs"] != 360.9375


@pytest.mark.rfc("9568-6.4.2-13", "holds")
def test_backup_without_preempt_accepts_lower_priority_master():
    r = started(priority=200, preempt=False)
    for t in range(1, 20):
        r.handle(adv(100), float(t))
        assert r.handle_timer(float(t)) == []
    assert r.state is State.BACKUP


@pytest.mark.rfc("9568-6.4.2-14", "holds")
@pytest.mark.rfc("9568-6.1-8", "holds")
def test_preempting_backup_discards_lower_adverts_and_takes_over():
    r = started(priority=150)
    deadline = r.get_timer()
    assert r.handle(adv(100), 1.0) == [PrepareTakeover(A("192.0.2.9"))]   # ready the service
    for t in (2.0, 3.0):
        assert r.handle(adv(100), t) == []
    assert r.get_timer() == deadline
    r.handle_timer(deadline)
    assert r.state is State.MASTER


@pytest.mark.rfc("9568-6.4.2-14", "refused")
def test_lower_advert_changes_nothing_in_preempting_backup():
    r = started(priority=150)
    before = r.snapshot()
    r.handle(adv(100), 1.0)
    assert r.snapshot() == before


@pytest.mark.rfc("9568-6.4.2-12", "holds")
def test_priority_zero_gives_takeover_after_skew():
    r = started()
    r.handle(adv(200), 1.0)
    r.handle(adv(0), 2.0)
    assert r.get_timer() == 2.0 + SKEW_100
    r.handle_timer(2.0 + SKEW_100)
    assert r.state is State.MASTER


@pytest.mark.rfc("9568-6.4.2-12", "refused")
def test_priority_zero_is_neither_immediate_nor_full_interval():
    r = started()
    r.handle(adv(200), 1.0)
    assert r.handle(adv(0), 2.0) == [PrepareTakeover(A("192.0.2.9"))]    # no takeover at once
    assert r.state is State.BACKUP
    assert r.get_timer() < 2.0 + MDI_100


@pytest.mark.rfc("9568-6.4.2-6", "holds")
def test_backup_shutdown_stops_silently():
    r = started()
    out = r.handle(Shutdown(), 1.0)
    assert r.state is State.STOPPED and out[-1] == Stopped()
    assert sent(out) == [] and r.get_timer() is None


@pytest.mark.rfc("9568-6.4.2-6", "refused")
@pytest.mark.rfc("9568-5.2.4-3", "refused")
def test_stopped_backup_never_takes_over_nor_sends_priority_zero():
    r = started()
    out = r.handle(Shutdown(), 1.0)
    assert 0 not in sent(out)
    for t in range(2, 20):
        assert r.handle_timer(float(t)) == [] and r.handle(adv(0), float(t)) == []
    assert r.state is State.STOPPED


@pytest.mark.rfc("9568-6.4.2-8", "holds")
@pytest.mark.rfc("9568-6.4.2-10", "holds")
@pytest.mark.rfc("9568-6.4.2-11", "holds")
def test_expiry_sends_advert_claims_announces_and_rearms():
    r = started(garp_repeat=3)
    out = r.handle_timer(MDI_100)
    kinds = [type(a) for a in out]
    assert kinds.index(ClaimVips) < kinds.index(SendAdvert) < kinds.index(Announce)
    assert next(a for a in out if isinstance(a, Announce)).addresses == VIPS
    assert r.get_timer() == MDI_100 + 1.0


@pytest.mark.rfc("9568-6.4.2-11", "refused")
def test_expiry_never_stays_backup():
    r = started()
    r.handle_timer(MDI_100)
    assert r.state is not State.BACKUP and r.snapshot()["timers"]["master_down"] is None


# -- Active (§6.4.3) -----------------------------------------------------------------------------

@pytest.mark.rfc("9568-6.4.3-11", "holds")
def test_master_adverts_every_interval_no_gap():
    r = master()
    t0 = r.get_timer()
    for k in range(50):
        assert r.get_timer() == pytest.approx(t0 + k)
        assert sent(r.handle_timer(r.get_timer())) == [100]


@pytest.mark.rfc("9568-6.4.3-11", "refused")
def test_no_input_leaves_the_master_silent_longer_than_the_interval():
    """Whatever arrives between two adverts (losing, priority-0, dropped or mismatching adverts,
    tracking changes), the next advert is never due later than one interval after the last."""
    r = master(interval_cs=50)
    last = r.get_timer() - 0.5
    inputs = [adv(50), adv(0), adv(60, interval=100), adv(100, vrid=9), adv(30, src="192.0.2.8"),
              TrackChanged("eth0", up=False, weight=-10), TrackChanged("eth0", up=True, weight=-10)]
    t = last
    for k in range(140):
        t += 0.13
        if r.get_timer() <= t:
            t = r.get_timer()
            out = r.handle_timer(t)
        else:
            out = r.handle(inputs[k % len(inputs)], t)
        if sent(out):
            last = t
        assert r.state is State.MASTER and r.get_timer() <= last + 0.5 + 1e-9, (k, t)


@pytest.mark.rfc("9568-6.4.3-12", "holds")
def test_master_answers_priority_zero_at_once_and_rearms():
    r = master()
    out = r.handle(adv(0), 5.25)
    assert sent(out) == [100]
    assert r.get_timer() == 6.25 and r.state is State.MASTER


@pytest.mark.rfc("9568-6.4.3-12", "refused")
@pytest.mark.parametrize("phase", [0.001, 0.25, 0.5, 0.999])
def test_priority_zero_never_waits_for_the_advert_timer(phase):
    """At any point of the interval, from any sender, priority 0 is answered in the same step;
    the master neither waits for its timer nor takes the 0 as a reason to leave."""
    r = master()
    start = r.get_timer() - 1.0                     # the last periodic advert went out here
    for src in ("192.0.2.9", "192.0.2.1", "192.0.2.200"):
        now = start + phase
        out = r.handle(adv(0, src=src), now)
        assert sent(out) == [100] and r.state is State.MASTER
        assert r.get_timer() == pytest.approx(now + 1.0)
        start = now


@pytest.mark.rfc("9568-6.4.3-13", "holds")
@pytest.mark.parametrize("prio, src", [(200, "192.0.2.1"), (100, "192.0.2.9")])
def test_master_yields_to_higher_priority_or_higher_address(prio, src):
    r = master()
    out = r.handle(adv(prio, src=src, interval=50), 7.0)
    assert r.state is State.BACKUP
    assert any(isinstance(a, ReleaseVips) for a in out)
    assert MasterSeen(A(src), prio, 50) in out
    assert r.master_adver_interval_cs == 50
    assert r.get_timer() == 7.0 + 1.8046875


@pytest.mark.rfc("9568-6.4.3-13", "refused")
def test_equal_priority_from_lower_address_does_not_displace():
    r = master()
    r.handle(adv(100, src="192.0.2.1"), 7.0)
    assert r.state is State.MASTER


def test_tie_break_is_unsigned_network_order():
    r = master(primary=A("127.0.0.1"))
    r.handle(adv(100, src="128.0.0.1"), 7.0)      # would be negative as a signed 32-bit value
    assert r.state is State.BACKUP


@pytest.mark.rfc("9568-6.4.3-1", "holds")
def test_master_ignores_preempt_false():
    r = master(preempt=False)
    r.handle(adv(200), 7.0)
    assert r.state is State.BACKUP


@pytest.mark.rfc("9568-6.4.3-1", "refused")
def test_master_with_preempt_false_is_not_sticky():
    r = master(preempt=False)
    r.handle(adv(101, src="192.0.2.1"), 7.0)
    assert r.state is not State.MASTER


@pytest.mark.rfc("9568-6.4.3-14", "holds")
def test_master_answers_losing_advert_at_once():
    r = master()
    timer = r.get_timer()
    out = r.handle(adv(50), 7.3)
    assert sent(out) == [100] and any(isinstance(a, Announce) for a in out)
    assert r.state is State.MASTER and r.get_timer() == timer
    # the re-announce is at most once per interval; the advert answer every time
    out2 = r.handle(adv(50), 7.4)
    assert sent(out2) == [100] and not any(isinstance(a, Announce) for a in out2)


@pytest.mark.rfc("9568-6.4.3-14", "refused")
@pytest.mark.parametrize("prio, src", [(99, "192.0.2.200"), (1, "192.0.2.9"), (100, "192.0.2.1")])
def test_no_losing_advert_goes_unanswered(prio, src):
    """A master that discarded losing adverts silently until its timer would let a stray
    router's adverts stand for up to an interval: every one of them gets our advert at once."""
    r = master()
    t = r.get_timer() - 1.0
    for k in range(25):
        t += 0.037
        out = r.handle(adv(prio, src=src), t)
        assert sent(out) == [100], (k, t)
    assert r.state is State.MASTER


@pytest.mark.rfc("9568-6.4.3-10", "holds")
@pytest.mark.rfc("9568-5.2.4-3", "holds")
def test_rfc_shutdown_sends_one_priority_zero_and_releases():
    r = master(graceful_handover="rfc")
    out = r.handle(Shutdown(), 9.0)
    assert sent(out) == [0]
    kinds = [type(a) for a in out]
    assert kinds.index(SendAdvert) < kinds.index(ReleaseVips) and out[-1] == Stopped()
    assert r.state is State.STOPPED


@pytest.mark.rfc("9568-6.4.3-10", "refused")
def test_rfc_shutdown_then_silence():
    r = master(graceful_handover="rfc")
    r.handle(Shutdown(), 9.0)
    assert r.get_timer() is None
    assert all(r.handle_timer(9.0 + k) == [] for k in range(10))


@pytest.mark.rfc("9568-5.2.4-3", "refused")
def test_periodic_adverts_never_carry_zero():
    r = master()
    prios = []
    for _ in range(30):
        prios += sent(r.handle_timer(r.get_timer()))
    assert prios and 0 not in prios


@pytest.mark.rfc("9568-7.2-1", "holds")
def test_next_advert_carries_priority_in_force():
    r = master()
    r.handle(TrackChanged("eth0", up=False, weight=-30), 5.0)
    assert sent(r.handle_timer(r.get_timer())) == [70]
    r.handle(TrackChanged("eth0", up=True, weight=-30), 6.0)
    assert sent(r.handle_timer(r.get_timer())) == [100]


@pytest.mark.rfc("9568-7.2-1", "refused")
def test_no_send_path_keeps_a_stale_priority():
    """After a priority change, none of the ways an advert leaves (timer, answer to a losing
    advert, answer to priority 0) sends the old value, nor anything but our VRID and VIPs."""
    r = master(vrid=7)
    t = r.get_timer()
    for weight, want in ((-30, 70), (-50, 50), (-99, 1)):
        r.handle(TrackChanged("eth0", up=False, weight=weight), t)
        out = r.handle_timer(r.get_timer())
        out += r.handle(adv(0, vrid=7), r.get_timer() - 0.5)
        out += r.handle(adv(want - 1 if want > 1 else 0, vrid=7), r.get_timer() - 0.25)
        ads = [a for a in out if isinstance(a, SendAdvert)]
        assert ads and {(a.priority, a.vrid, a.addresses) for a in ads} == {(want, 7, VIPS)}
        r.handle(TrackChanged("eth0", up=True, weight=weight), r.get_timer())
        t = r.get_timer()


@pytest.mark.rfc("9568-5.2.3-1", "holds")
def test_adverts_carry_our_vrid_and_interval():
    r = master(vrid=7, interval_cs=25)
    a = next(a for a in r.handle_timer(r.get_timer()) if isinstance(a, SendAdvert))
    assert (a.vrid, a.interval_cs, a.addresses, a.version) == (7, 25, VIPS, 3)


# -- Local errors --------------------------------------------------------------------------------

def test_illegal_event_raises_and_changes_nothing():
    r = started()
    before = r.snapshot()
    with pytest.raises(LocalProtocolError):
        r.handle(Startup(), 1.0)
    with pytest.raises(LocalProtocolError):
        r.handle(object(), 1.0)
    assert r.snapshot() == before
    r.handle(Shutdown(), 2.0)
    with pytest.raises(LocalProtocolError):
        r.handle(Shutdown(), 3.0)
    assert r.state is State.STOPPED


def test_restart_after_stop():
    r = started()
    r.handle(Shutdown(), 1.0)
    r.handle(Startup(), 2.0)
    assert r.state is State.BACKUP and r.get_timer() == 2.0 + MDI_100


def test_history_ring_is_bounded_and_ordered():
    r = VirtualRouter(params(history_size=4))
    r.handle(Startup(), 0.0)
    for _ in range(10):
        r.handle_timer(r.get_timer())
        r.handle(adv(200), r.get_timer() - 0.5)
    assert len(r.history) == 4
    times = [h.time for h in r.history]
    assert times == sorted(times) and r.history[-1].new == "backup"
