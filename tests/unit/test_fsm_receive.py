"""core/fsm.py: what the state machine judges on receipt (RFC 9568 §7.1) and its rate-limited logs."""
from __future__ import annotations

import ipaddress as ip

import pytest

from vmacd.core.events import AdvertReceived, Drop, Log, SendAdvert, Startup
from vmacd.core.fsm import RouterParams, State, VirtualRouter
from vmacd.core.wire import DROP_REASONS, Advertisement

A = ip.ip_address
VIPS = (A("192.0.2.254"),)


def make(**kw) -> VirtualRouter:
    kw.setdefault("primary", A("192.0.2.2"))
    kw.setdefault("vips", VIPS)
    r = VirtualRouter(RouterParams(vrid=kw.pop("vrid", 5), **kw))
    r.handle(Startup(), 0.0)
    return r


def adv(prio=200, src="192.0.2.9", interval=100, vrid=5, addresses=VIPS, version=3):
    return AdvertReceived(Advertisement(version, vrid, prio, interval, tuple(addresses), src=A(src)))


def logs(actions, kind):
    return [a for a in actions if isinstance(a, Log) and a.kind == kind]


BAD = {
    "other vrid": (adv(vrid=6), "vrid"),
    "other family": (adv(src="fe80::9", addresses=(A("fe80::1"),)), "vrid"),
    "v2 to a v3 instance": (adv(version=2), "version"),
    "our own source": (adv(src="192.0.2.2"), "addresses"),
}


@pytest.mark.rfc("9568-7.1-9", "refused")
@pytest.mark.rfc("9568-5.2.3-1", "refused")
@pytest.mark.parametrize("state", ["backup", "master"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_refused_advert_changes_nothing(case, state):
    r = make()
    r.handle(adv(200), 1.0)
    if state == "master":
        r = make()
        r.handle_timer(r.get_timer())
    before = r.snapshot()
    event, reason = BAD[case]
    out = r.handle(event, 5.0)
    assert out[0] == Drop(reason, out[0].detail) and reason in DROP_REASONS
    assert r.snapshot() == before


@pytest.mark.rfc("9568-7.1-9", "holds")
def test_valid_advert_resets_the_timer():
    r = make()
    r.handle(adv(200), 1.0)
    t = r.get_timer()
    assert not [a for a in r.handle(adv(200), 2.0) if isinstance(a, Drop)]
    assert r.get_timer() == t + 1.0


@pytest.mark.rfc("9568-6.4-1", "holds")
@pytest.mark.rfc("9568-6.4-1", "refused")
def test_v4_and_v6_vrid_5_are_separate():
    v4 = make()
    v6 = make(primary=A("fe80::2"), vips=(A("fe80::1"),))
    v6_owner_advert = adv(255, src="fe80::9", addresses=(A("fe80::1"),))
    before = v4.snapshot()
    assert isinstance(v4.handle(v6_owner_advert, 1.0)[0], Drop)
    assert v4.snapshot() == before
    v6.handle(v6_owner_advert, 1.0)
    assert v6.master_seen.priority == 255 and v4.master_seen is None


def test_v2_interval_mismatch_is_dropped():
    r = make(version=2)
    before = r.snapshot()
    out = r.handle(adv(version=2, interval=300), 1.0)
    assert out[0].reason == "interval" and r.snapshot() == before
    assert r.handle(adv(version=2, interval=100), 1.0)[0].src == A("192.0.2.9")   # MasterSeen


@pytest.mark.rfc("9568-7.1-12", "holds")
@pytest.mark.rfc("9568-7.1-13", "holds")
def test_v3_interval_mismatch_is_logged_and_adopted():
    r = make()
    out = r.handle(adv(interval=50), 1.0)
    assert not [a for a in out if isinstance(a, Drop)]
    assert len(logs(out, "interval-mismatch")) == 1
    assert r.master_adver_interval_cs == 50


@pytest.mark.rfc("9568-7.1-12", "refused")
@pytest.mark.parametrize("state", ["backup", "master"])
@pytest.mark.parametrize("interval", [1, 99, 101, 4095])
def test_an_interval_mismatch_is_never_a_drop(state, interval):
    """Neither state drops a v3 advert for its interval alone: a backup adopts it, a master
    answers a losing one (or yields to a winning one) as for any other advert."""
    r = make()
    if state == "master":
        r.handle_timer(r.get_timer())
        assert r.state is State.MASTER
    for prio in (50, 200):
        out = r.handle(adv(prio, interval=interval), 5.0 + prio / 1000)
        assert not [a for a in out if isinstance(a, Drop)], (prio, out)
    assert r.state is State.BACKUP and r.master_adver_interval_cs == interval


@pytest.mark.rfc("9568-7.1-13", "refused")
@pytest.mark.rfc("9568-7.1-10", "refused")
def test_mismatch_and_drop_logs_are_rate_limited():
    r = make(log_interval=10.0)
    mism = drops = 0
    for k in range(1000):
        t = 1.0 + k * 0.001
        mism += len(logs(r.handle(adv(interval=50), t), "interval-mismatch"))
        drops += len(logs(r.handle(adv(vrid=9), t), "drop"))
    assert (mism, drops) == (1, 1)
    out = r.handle(adv(vrid=9), 20.0)
    assert logs(out, "drop")[0].suppressed == 999


@pytest.mark.rfc("9568-7.1-10", "holds")
@pytest.mark.rfc("9568-7.1-11", "holds")
def test_one_drop_one_log_line_and_a_counter_action():
    r = make()
    out = r.handle(adv(vrid=9), 1.0)
    assert isinstance(out[0], Drop) and len(logs(out, "drop")) == 1


@pytest.mark.rfc("9568-7.1-11", "refused")
@pytest.mark.rfc("9568-7.1-14", "refused")
@pytest.mark.rfc("9568-7.1-17", "refused")
def test_matching_advert_reports_nothing():
    r = make()
    out = r.handle(adv(200), 1.0)
    assert not [a for a in out if isinstance(a, (Drop, Log))]


@pytest.mark.rfc("9568-7.1-14", "holds")
def test_interval_mismatch_is_reported_for_management():
    out = make().handle(adv(interval=30), 1.0)
    assert logs(out, "interval-mismatch")[0].message.endswith("configured 100 cs")


@pytest.mark.rfc("9568-7.1-15", "holds")
@pytest.mark.rfc("9568-7.1-16", "holds")
@pytest.mark.rfc("9568-7.1-17", "holds")
def test_address_mismatch_logged_and_still_processed():
    r = make()
    out = r.handle(adv(addresses=(A("192.0.2.77"),)), 1.0)
    assert len(logs(out, "address-mismatch")) == 1
    assert r.master_seen is not None and not [a for a in out if isinstance(a, Drop)]


@pytest.mark.rfc("9568-7.1-15", "refused")
@pytest.mark.rfc("9568-7.1-16", "refused")
def test_same_addresses_other_order_not_flagged_and_flood_bounded():
    two = (A("192.0.2.254"), A("192.0.2.253"))
    r = make(vips=two)
    assert logs(r.handle(adv(addresses=two[::-1]), 1.0), "address-mismatch") == []
    n = sum(len(logs(r.handle(adv(addresses=(A("192.0.2.1"),)), 1 + k / 100), "address-mismatch"))
            for k in range(500))
    assert n == 1


@pytest.mark.rfc("9568-7.1-21", "holds")
@pytest.mark.rfc("9568-8.3.2-2", "holds")
def test_owner_logs_a_second_owner_once():
    r = make(priority=255)
    out = r.handle(adv(255), 1.0)
    assert len(logs(out, "owner-conflict")) == 1
    assert not any(logs(r.handle(adv(255), 1.5 + k / 10), "owner-conflict") for k in range(50))


@pytest.mark.rfc("9568-7.1-21", "refused")
@pytest.mark.rfc("9568-7.1-8", "refused")
def test_owner_never_yields_to_another_255():
    r = make(priority=255)
    before = r.snapshot()
    r.handle(adv(255, src="192.0.2.200"), 1.0)     # higher address, same priority
    assert r.state is State.MASTER and r.snapshot() == before


@pytest.mark.rfc("9568-7.1-8", "holds")
def test_non_owner_processes_an_owner_advert():
    r = make(priority=254)
    r.handle(adv(255), 1.0)
    assert r.master_seen.priority == 255 and r.get_timer() == 1.0 + 3.0078125


def test_owner_answers_a_lower_advert():
    r = make(priority=255)
    out = r.handle(adv(100), 1.0)
    assert [a.priority for a in out if isinstance(a, SendAdvert)] == [255]


@pytest.mark.rfc("9568-8.3.2-2", "refused")
def test_one_owner_gives_no_conflict_log():
    r = make()
    assert not any(logs(r.handle(adv(255), float(t)), "owner-conflict") for t in range(1, 10))


def test_non_owner_sees_two_owners():
    r = make()
    r.handle(adv(255, src="192.0.2.9"), 1.0)
    assert len(logs(r.handle(adv(255, src="192.0.2.10"), 1.5), "owner-conflict")) == 1


@pytest.mark.rfc("9568-8.3.2-4", "holds")
def test_equal_priority_gives_a_warning():
    r = make()
    [line] = logs(r.handle(adv(100), 2.0), "equal-priority")
    assert line.level == "warning" and "192.0.2.9" in line.message


@pytest.mark.rfc("9568-8.3.2-4", "refused")
@pytest.mark.parametrize("prio", [1, 99, 101, 150, 254])
def test_distinct_priorities_give_no_equal_priority_warning(prio):
    r = make()
    for t in range(1, 6):
        assert logs(r.handle(adv(prio), float(t)), "equal-priority") == []


@pytest.mark.rfc("9568-2.5-1", "holds")
def test_flapping_master_logs_once_per_window():
    r = make(log_interval=30.0)
    lines, t = [], 0.0
    for _ in range(6):
        t = r.get_timer()
        lines += logs(r.handle_timer(t), "flapping")
        r.handle(adv(200), t + 0.5)              # loses it again
    assert len(lines) == 1


@pytest.mark.rfc("9568-2.5-1", "refused")
def test_stable_master_never_logs_flapping():
    r = make()
    lines = []
    for _ in range(200):
        lines += logs(r.handle_timer(r.get_timer()), "flapping")
    assert r.state is State.MASTER and lines == []
