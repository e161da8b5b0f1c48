"""The peer table: address-list comparison (keepalived's / FRR's lists), refusals, ageing."""
from __future__ import annotations

import ipaddress

import pytest

from vmacd.core import wire
from vmacd.core.peers import PeerTable, check_addresses
from vmacd.core.wire import Advertisement, decode, encode

ip = ipaddress.ip_address
LL, GLOBAL, OTHER = ip("fe80::1"), ip("2001:db8:0:1::fe"), ip("2001:db8:0:1::fd")
OURS = (LL, GLOBAL)
KA_SRC, FRR_SRC = ip("fe80::12"), ip("fe80::13")


def received(addresses, src=KA_SRC, priority=100) -> Advertisement:
    """An advert as the codec hands it over (decoded from real bytes, so marks are real)."""
    payload = encode(Advertisement(3, 51, priority, 100, tuple(addresses)), src=src, dst=wire.VRRP_GROUP_V6)
    return decode(payload, src=src, dst=wire.VRRP_GROUP_V6, ttl=255)


@pytest.mark.rfc("9568-7.1-15", "holds")
def test_keepalived_global_only_list_is_flagged_with_what_follows():
    chk = check_addresses(received([GLOBAL]).addresses, OURS)
    assert (chk.same, chk.same_set, chk.missing, chk.extra) == (False, False, (LL,), ())
    assert chk.first_not_link_local and chk.keepalived_refuses_ours
    ka, first = chk.warnings()
    assert ka.startswith("its address list differs from ours (1 address(es), we send 2; not listing "
                         "fe80::1): a keepalived peer drops our adverts")
    assert "ipv6_link_local_first = false" in ka
    assert first.startswith("its first IPv6 address 2001:db8:0:1::fe is not link-local")
    assert chk.as_dict() == {"same": False, "same_set": False, "missing": ["fe80::1"], "extra": [],
                             "first_not_link_local": True, "keepalived_refuses_ours": True}


@pytest.mark.rfc("9568-7.1-15", "refused")
def test_identical_list_is_not_flagged():
    chk = check_addresses(received(OURS).addresses, OURS)
    assert chk.same and chk.same_set and not chk.keepalived_refuses_ours and not chk.first_not_link_local
    assert chk.warnings() == []


@pytest.mark.parametrize(("theirs", "refuses", "warning"), [
    ((GLOBAL, LL), False, "it lists our addresses in another order"),   # keepalived: any order
    ((LL, OTHER), True, "listing 2001:db8:0:1::fd that we do not"),     # same count, other address
    ((LL, GLOBAL, OTHER), True, "3 address(es), we send 2"),            # a superset: count differs
])
def test_what_a_keepalived_peer_would_accept(theirs, refuses, warning):
    chk = check_addresses(theirs, OURS)
    assert chk.keepalived_refuses_ours is refuses
    assert any(warning in w for w in chk.warnings()), chk.warnings()


def test_ipv4_lists_are_never_marked_first_not_link_local():
    a, b = ip("192.0.2.254"), ip("192.0.2.253")
    chk = check_addresses((a,), (a, b))
    assert not chk.first_not_link_local and chk.keepalived_refuses_ours and chk.missing == (b,)


def test_table_rows_accepted_refused_and_warnings():
    t = PeerTable(OURS, forget_after=3.0)
    assert t.heard(received([GLOBAL]), 10.0).keepalived_refuses_ours
    t.heard(received([GLOBAL]), 10.1)
    t.heard(received(OURS, src=FRR_SRC, priority=90), 10.2)
    frr, ka = t.status(10.25)
    assert (frr["src"], frr["accepted"], frr["warnings"], frr["advert"]["priority"]) == \
        (str(FRR_SRC), 1, [], 90)
    assert (ka["src"], ka["accepted"], ka["refused"], ka["age_s"]) == (str(KA_SRC), 2, 0, 0.15)
    assert ka["advert"] == {"version": 3, "priority": 100, "interval_ms": 1000,
                            "addresses": ["2001:db8:0:1::fe"]}
    assert ka["address_list"]["keepalived_refuses_ours"] and len(ka["warnings"]) == 2


def test_a_refused_peer_is_reported_until_it_is_heard_again():
    """Strict mode drops keepalived's list: the row says so (a second master, if it is one)."""
    t = PeerTable(OURS, forget_after=3.0)
    t.refused(KA_SRC, "addresses", "first IPv6 address 2001:db8:0:1::fe is not link-local", 5.0)
    [row] = t.status(5.5)
    assert (row["refused"], row["accepted"], row["advert"]) == (1, 0, None)
    assert row["last_refusal"] == {"reason": "addresses", "age_s": 0.5,
                                   "detail": "first IPv6 address 2001:db8:0:1::fe is not link-local"}
    assert row["warnings"][0].startswith("we drop its adverts (addresses: first IPv6 address")
    t.heard(received(OURS), 6.0)                 # the peer was reconfigured: heard, accepted
    assert t.status(6.0)[0]["warnings"] == []
    assert t.status(6.0)[0]["last_refusal"]["age_s"] == 1.0    # history stays visible


def test_rows_age_out_and_the_table_is_bounded():
    t = PeerTable(OURS, forget_after=3.0, max_peers=2)
    t.heard(received(OURS, src=ip("fe80::a")), 0.0)
    t.heard(received(OURS, src=ip("fe80::b")), 1.0)
    t.heard(received(OURS, src=ip("fe80::c")), 2.0)     # evicts the least recently heard
    assert [p.src for p in t.peers(2.0)] == [ip("fe80::c"), ip("fe80::b")]
    assert [p.src for p in t.peers(4.5)] == [ip("fe80::c")]       # fe80::b not heard for 3.5 s
    assert t.peers(5.1) == []


def test_reload_of_our_list_compares_again():
    t = PeerTable(OURS, forget_after=3.0)
    t.heard(received([GLOBAL]), 0.0)
    t.set_ours((GLOBAL,))                       # ipv6_link_local_first = false: keepalived's list
    [row] = t.status(0.1)
    assert not row["address_list"]["keepalived_refuses_ours"] and row["address_list"]["same"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="forget_after"):
        PeerTable(OURS, forget_after=0)
    with pytest.raises(ValueError, match="without a source"):
        PeerTable(OURS, 1.0).heard(Advertisement(3, 51, 100, 100, OURS), 0.0)
