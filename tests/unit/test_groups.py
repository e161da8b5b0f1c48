"""core/groups.py: tracker aggregation and sync groups (pure)."""
from __future__ import annotations

import ipaddress as ip

from hypothesis import given
from hypothesis import strategies as st

from vmacd.core.events import (
    AdvertReceived,
    LinkChanged,
    Maintenance,
    SendAdvert,
    Startup,
)
from vmacd.core.fsm import RouterParams, State, VirtualRouter
from vmacd.core.groups import (
    MemberView,
    SyncGroup,
    Tracking,
    TrackState,
    effective_priority,
    file_track,
    settle,
)
from vmacd.core.wire import Advertisement

A = ip.ip_address


def test_weights_apply_by_sign():
    t = Tracking().update("eth0", False, -50).update("web", True, 20).update("disk", True, -30)
    assert t.shift == -30 and t.faults == ()
    assert effective_priority(100, t) == 70
    assert t.update("eth0", True, -50).shift == 20
    assert Tracking().update("svc", False, 0).faults == ("svc",)


@given(st.integers(1, 254), st.lists(st.tuples(st.booleans(), st.integers(-300, 300)), max_size=6))
def test_effective_priority_stays_in_1_254(prio, objs):
    t = Tracking()
    for i, (up, w) in enumerate(objs):
        t = t.update(f"o{i}", up, w)
    assert 1 <= effective_priority(prio, t) <= 254
    assert effective_priority(255, t) == 255


def test_tracking_order_does_not_matter():
    a = Tracking().update("a", True, 1).update("b", False, -2)
    b = Tracking().update("b", False, -2).update("a", True, 1)
    assert a == b


def test_file_track_keepalived_semantics():
    assert file_track("f", 0, 0) == TrackState("f", True, 0)
    assert file_track("f", 3, 0).faulted
    assert file_track("f", 5, 10).shift == 50
    assert file_track("f", -5, 10).shift == -50
    assert file_track("f", -26, 10).faulted           # -260 <= -254


def test_directives_fault_and_hold():
    g = SyncGroup("router", ("lan", "wan", "dmz"))
    d = g.directives({"lan": MemberView(True, False), "wan": MemberView(False, False),
                      "dmz": MemberView(False, True)})
    assert d["wan"].fault and d["wan"].hold and "lan in fault" in d["wan"].reason
    assert d["lan"].hold and not d["lan"].fault          # only the others count
    assert not d["dmz"].hold and d["dmz"].fault
    quiet = g.directives({n: MemberView(False, False) for n in g.members})
    assert not any(x.fault or x.hold for x in quiet.values())
    inactive = g.directives({"lan": MemberView(True, False, active=False),
                             "wan": MemberView(False, False)})
    assert not inactive["wan"].fault


def _pair(prio=200):
    mk = lambda vrid, ip4, vip: VirtualRouter(RouterParams(
        vrid=vrid, primary=A(ip4), vips=(A(vip),), priority=prio, name=str(vrid)))
    routers = {"lan": mk(1, "192.0.2.2", "192.0.2.1"), "wan": mk(2, "198.51.100.2", "198.51.100.1")}
    for r in routers.values():
        r.handle(Startup(), 0.0)
        r.handle_timer(r.get_timer())
    return SyncGroup("g", ("lan", "wan")), routers


def test_one_fault_faults_the_group_and_recovers_together():
    g, rs = _pair()
    rs["lan"].handle(LinkChanged(False), 5.0)
    out = settle(g, rs, 5.0)
    assert rs["wan"].state is State.FAULT
    assert [a.priority for n, a in out if isinstance(a, SendAdvert)] == [0]
    rs["lan"].handle(LinkChanged(True), 6.0)
    settle(g, rs, 6.0)
    assert rs["lan"].state is State.BACKUP and rs["wan"].state is State.BACKUP


def test_beaten_member_makes_the_other_resign_then_hold():
    g, rs = _pair()
    higher = Advertisement(3, 1, 250, 100, (A("192.0.2.1"),), src=A("192.0.2.9"))
    rs["lan"].handle(AdvertReceived(higher), 5.0)
    assert rs["lan"].state is State.BACKUP and rs["lan"].group_view().beaten
    out = settle(g, rs, 5.0)
    assert [a.priority for n, a in out if isinstance(a, SendAdvert)] == [0]   # wan leaves
    assert rs["wan"].group_directive.hold
    # while held, wan accepts a lower master instead of preempting it
    low = Advertisement(3, 2, 100, 100, (A("198.51.100.1"),), src=A("198.51.100.9"))
    rs["wan"].handle(AdvertReceived(low), 5.5)
    assert rs["wan"].state is State.BACKUP
    rs["wan"].handle(AdvertReceived(low), 6.0)
    assert rs["wan"].get_timer() > 9.0 and rs["wan"].state is State.BACKUP
    # the lan master goes silent: lan takes over, the hold lifts, wan preempts within one MDI
    rs["lan"].handle_timer(rs["lan"].get_timer())
    assert rs["lan"].state is State.MASTER
    settle(g, rs, rs["lan"].history[-1].time)
    assert not rs["wan"].group_directive.hold
    rs["wan"].handle(AdvertReceived(low), 10.0)               # discarded now (preempt)
    rs["wan"].handle_timer(rs["wan"].get_timer())
    assert rs["wan"].state is State.MASTER


def test_maintenance_on_one_member_moves_the_group():
    g, rs = _pair()
    rs["lan"].handle(Maintenance(True, force=True), 5.0)   # no successor here: forced
    rs["lan"].handle_timer(rs["lan"].get_timer())          # handover bound passes
    settle(g, rs, 9.5)
    assert rs["lan"].state is State.BACKUP and rs["wan"].leaving
