"""The VRRP codec's receive side: every drop reason, both IPv4 v3 checksum forms, the malformed
IP layer, and what the fuzzer found (the packets come from test_wire.py's helpers)."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct

import pytest
from test_wire import ADV2, ADV4, ADV6, G4, G6, S4, S6, dec4, ip, refix_v3_v4, v4

from vmacd.core import wire
from vmacd.core.auth import AuthSpec
from vmacd.core.wire import (
    Advertisement,
    PacketError,
    build_ip_packet,
    decode,
    decode_ip_packet,
    encode,
    inet_checksum,
)

# --- drop reasons --------------------------------------------------------------------------------

@pytest.mark.rfc("9568-5.1.1.3-2", "holds")
@pytest.mark.rfc("9568-7.1-1", "holds")
def test_ipv4_ttl_255_is_accepted():
    assert dec4(v4(), ttl=255) == Advertisement(3, 51, 150, 100, ADV4.addresses, src=S4, dst=G4,
                                                ttl=255, checksum="pseudo-header")
    whole = decode_ip_packet(build_ip_packet(ADV4, src=S4, dst=G4))
    assert (whole.ttl, whole.vrid, whole.priority) == (255, 51, 150)


@pytest.mark.rfc("9568-5.1.1.3-2", "refused")
@pytest.mark.rfc("9568-7.1-1", "refused")
@pytest.mark.parametrize("ttl", [254, 64, 1, 0])
def test_ipv4_ttl_must_be_255(ttl):
    assert dec4(v4(), ttl=255).ttl == 255           # the same packet passes with 255
    with pytest.raises(PacketError) as err:
        dec4(v4(), ttl=ttl)
    assert err.value.reason == "ttl"
    pkt = bytearray(build_ip_packet(ADV4, src=S4, dst=G4))
    pkt[8], pkt[10:12] = ttl, b"\0\0"
    struct.pack_into("!H", pkt, 10, inet_checksum(pkt[:20]))
    with pytest.raises(PacketError, match="ttl"):
        decode_ip_packet(bytes(pkt))


@pytest.mark.rfc("9568-5.1.2.3-2", "holds")
@pytest.mark.rfc("9568-7.1-2", "holds")
def test_ipv6_hop_limit_255_is_accepted():
    payload = encode(ADV6, src=S6, dst=G6)
    got = decode(payload, src=S6, dst=G6, ttl=255)
    assert (got.ttl, got.vrid, got.addresses) == (255, 5, ADV6.addresses)
    whole = decode_ip_packet(build_ip_packet(ADV6, src=S6, dst=G6))
    assert whole.ttl == 255 and whole.src == S6


@pytest.mark.rfc("9568-5.1.2.3-2", "refused")
@pytest.mark.rfc("9568-7.1-2", "refused")
@pytest.mark.parametrize("hlim", [254, 1, None])
def test_ipv6_hop_limit_must_be_255_and_known(hlim):
    payload = encode(ADV6, src=S6, dst=G6)
    assert decode(payload, src=S6, dst=G6, ttl=255).ttl == 255     # the same payload passes
    with pytest.raises(PacketError) as err:
        decode(payload, src=S6, dst=G6, ttl=hlim)
    assert err.value.reason == "ttl"


@pytest.mark.rfc("9568-7.1-3", "holds")
@pytest.mark.rfc("9568-5.2.2-2", "holds")
@pytest.mark.rfc("9568-7.1-4", "holds")
def test_version_3_type_1_is_accepted():
    payload = v4()
    assert payload[0] == 0x31
    got = dec4(payload)
    assert (got.version, got.type) == (3, 1)
    assert decode(encode(ADV6, src=S6, dst=G6), src=S6, dst=G6, ttl=255).version == 3


@pytest.mark.rfc("9568-7.1-3", "refused")
@pytest.mark.parametrize("version", [0, 1, 4, 15])
def test_unknown_version_is_refused(version):
    assert dec4(v4()).version == 3
    bad = bytearray(v4())
    bad[0] = (version << 4) | 1
    with pytest.raises(PacketError) as err:
        dec4(refix_v3_v4(bytes(bad)))
    assert err.value.reason == "version"


def test_v2_over_ipv6_is_refused():
    bad = bytearray(encode(ADV6, src=S6, dst=G6))
    bad[0] = 0x21
    with pytest.raises(PacketError, match="version"):
        decode(bytes(bad), src=S6, dst=G6, ttl=255)


@pytest.mark.rfc("9568-5.2.2-2", "refused")
@pytest.mark.rfc("9568-7.1-4", "refused")
@pytest.mark.parametrize("vtype", [0, 2, 15])
def test_type_other_than_1_is_refused(vtype):
    assert dec4(v4()).type == 1
    bad = bytearray(v4())
    bad[0] = 0x30 | vtype
    with pytest.raises(PacketError) as err:
        dec4(refix_v3_v4(bytes(bad)))
    assert err.value.reason == "type"


@pytest.mark.rfc("9568-7.1-5", "holds")
@pytest.mark.parametrize("count", [1, 2, 255])
def test_exact_length_is_accepted_for_any_count(count):
    v4s = tuple(ip("203.0.113.0") + i for i in range(1, count + 1))
    v6s = (ip("fe80::1"),) + tuple(ip("2001:db8::") + i for i in range(1, count))
    p4 = v4(Advertisement(3, 9, 100, 100, v4s))
    p6 = encode(Advertisement(3, 9, 100, 100, v6s), src=S6, dst=G6)
    assert (len(p4), len(p6)) == (8 + 4 * count, 8 + 16 * count)
    assert dec4(p4).addresses == v4s
    assert decode(p6, src=S6, dst=G6, ttl=255).addresses == v6s


@pytest.mark.rfc("9568-7.1-5", "refused")
def test_length_must_be_exact():
    assert len(dec4(v4()).addresses) == 2
    for cut in (1, 4, len(v4()) - 7):
        with pytest.raises(PacketError) as err:
            dec4(v4()[:-cut])
        assert err.value.reason == "length"
    for short in (b"", b"\x31", v4()[:7]):
        with pytest.raises(PacketError, match="length"):
            dec4(short)


@pytest.mark.rfc("9568-5.2.9-2", "refused")
def test_v6_advert_sized_for_ipv4_entries_fails_length():
    payload = encode(ADV6, src=S6, dst=G6)
    bad = payload[:8] + payload[8:16]          # count 2, but only 8 bytes of addresses
    with pytest.raises(PacketError, match="length"):
        decode(bad, src=S6, dst=G6, ttl=255)


def test_trailing_bytes_are_refused():
    """docs/wire.md: bytes after the last address (v3) or the auth data (v2) are refused."""
    for extra in (b"\0", b"\0" * 4, b"\xff" * 28):
        with pytest.raises(PacketError, match="too long"):
            dec4(v4() + extra)
        with pytest.raises(PacketError, match="too long"):
            dec4(encode(ADV2, src=S4, dst=G4) + extra)


def test_ethernet_padding_after_ip_total_length_is_ignored():
    adv = Advertisement(3, 1, 100, 100, (ip("192.0.2.1"),))
    pkt = build_ip_packet(adv, src=S4, dst=G4)
    assert decode_ip_packet(pkt + b"\0" * 14).vrid == 1


@pytest.mark.rfc("9568-5.2.5-2", "holds")
@pytest.mark.rfc("9568-7.1-18", "holds")
def test_address_count_one_is_accepted():
    one = Advertisement(3, 1, 100, 100, (ip("192.0.2.1"),))
    payload = v4(one)
    assert payload[3] == 1
    assert dec4(payload).addresses == (ip("192.0.2.1"),)
    assert decode_ip_packet(build_ip_packet(one, src=S4, dst=G4)).addresses == one.addresses


@pytest.mark.rfc("9568-5.2.5-2", "refused")
@pytest.mark.rfc("9568-7.1-18", "refused")
def test_address_count_zero_is_refused():
    one = Advertisement(3, 1, 100, 100, (ip("192.0.2.1"),))
    assert len(dec4(v4(one)).addresses) == 1
    bad = bytearray(v4(one)[:8])
    bad[3] = 0
    with pytest.raises(PacketError) as err:
        dec4(refix_v3_v4(bytes(bad)))
    assert err.value.reason == "addresses"


@pytest.mark.rfc("9568-7.1-20", "holds")
@pytest.mark.parametrize("cs", [1, 100, 4095])
def test_a_non_zero_interval_is_accepted(cs):
    assert dec4(v4(Advertisement(3, 1, 100, cs, (ip("192.0.2.1"),)))).interval_cs == cs
    assert decode(encode(Advertisement(3, 5, 100, cs, ADV6.addresses), src=S6, dst=G6),
                  src=S6, dst=G6, ttl=255).interval_cs == cs


@pytest.mark.rfc("9568-7.1-20", "refused")
def test_interval_zero_is_refused():
    one = Advertisement(3, 1, 100, 1, (ip("192.0.2.1"),))
    assert dec4(v4(one)).interval_cs == 1
    bad = bytearray(v4(one))
    bad[4:6] = b"\xf0\x00"                       # reserve bits set, interval 0
    with pytest.raises(PacketError) as err:
        dec4(refix_v3_v4(bytes(bad)))
    assert err.value.reason == "interval"
    v2 = bytearray(encode(ADV2, src=S4, dst=G4))
    v2[5], v2[6:8] = 0, b"\0\0"
    struct.pack_into("!H", v2, 6, inet_checksum(v2))
    with pytest.raises(PacketError, match="interval"):
        dec4(bytes(v2))


@pytest.mark.rfc("9568-5.2.6-2", "holds")
def test_reserve_nibble_is_ignored_on_receipt():
    bad = bytearray(v4())
    bad[4] |= 0xF0                                 # Reserve = 0xF, interval still 100
    adv = dec4(refix_v3_v4(bytes(bad)))
    assert adv.interval_cs == 100                  # not 0xF064, and not dropped


@pytest.mark.rfc("9568-5.2.6-2", "refused")
@pytest.mark.parametrize("reserve", [1, 8, 15])
def test_reserve_bits_never_count_as_interval(reserve):
    """Reading Reserve as part of the interval would turn a zero interval into a valid one and a
    4095 cs interval into another value: neither happens."""
    zero = bytearray(v4())
    zero[4:6] = bytes([reserve << 4, 0])
    with pytest.raises(PacketError) as err:
        dec4(refix_v3_v4(bytes(zero)))
    assert err.value.reason == "interval"
    top = bytearray(v4())
    top[4:6] = bytes([(reserve << 4) | 0x0F, 0xFF])
    assert dec4(refix_v3_v4(bytes(top))).interval_cs == 4095


# 9568-7.1-19 is a deliberate departure (`ipv6_link_local_first_strict = false` by default):
# the marks below check the RFC behaviour, which strict_link_local=True gives back
@pytest.mark.rfc("9568-7.1-19", "holds")
def test_ipv6_link_local_first_is_accepted():
    for first in ("fe80::1", "fe80::ff:1"):
        adv = Advertisement(3, 5, 200, 50, (ip(first), ip("2001:db8::1"), ip("2001:db8::2")))
        got = decode_ip_packet(build_ip_packet(adv, src=S6, dst=G6))
        assert got.addresses == adv.addresses and got.addresses[0].is_link_local


@pytest.mark.rfc("9568-7.1-19", "refused")
def test_ipv6_first_address_must_be_link_local_when_strict():
    ok = decode(encode(ADV6, src=S6, dst=G6), src=S6, dst=G6, ttl=255, strict_link_local=True)
    assert ok.addresses[0] == ip("fe80::1") and not ok.first_not_link_local
    msg = bytearray(encode(ADV6, src=S6, dst=G6))
    msg[8:24], msg[24:40] = msg[24:40], msg[8:24]      # global first, same checksum (same words)
    with pytest.raises(PacketError) as err:
        decode(bytes(msg), src=S6, dst=G6, ttl=255, strict_link_local=True)
    assert err.value.reason == "addresses" and "2001:db8::1 is not link-local" in err.value.detail
    packet = build_ip_packet(ADV6, src=S6, dst=G6)
    swapped = packet[:48] + packet[64:80] + packet[48:64]
    with pytest.raises(PacketError, match="addresses"):
        decode_ip_packet(swapped, strict_link_local=True)


def test_ipv6_first_address_not_link_local_is_accepted_and_marked_by_default():
    """The departure: keepalived's and FRR's lists are accepted, marked `first_not_link_local`
    so the receiver can count and show them; everything else about the advert is judged as usual."""
    msg = bytearray(encode(ADV6, src=S6, dst=G6))
    msg[8:24], msg[24:40] = msg[24:40], msg[8:24]
    adv = decode(bytes(msg), src=S6, dst=G6, ttl=255)
    assert adv.first_not_link_local and adv.addresses == (ip("2001:db8::1"), ip("fe80::1"))
    assert not decode(encode(ADV6, src=S6, dst=G6), src=S6, dst=G6, ttl=255).first_not_link_local
    assert not dec4(v4()).first_not_link_local                    # IPv4: never marked
    msg[7] ^= 1                                                   # and a bad checksum still drops
    with pytest.raises(PacketError, match="checksum"):
        decode(bytes(msg), src=S6, dst=G6, ttl=255)


# --- checksum forms ----------------------------------------------------------------------------

@pytest.mark.rfc("9568-5.2.8-2", "holds")
def test_rfc_form_is_the_message_alone_and_accepted_in_strict_mode():
    """`v3_checksum_pseudoheader = false`: the IPv4 v3 checksum covers the VRRP message only."""
    for adv in (ADV4, Advertisement(3, 255, 0, 4095, (ip("203.0.113.1"),))):
        payload = v4(adv, pseudo_header=False)
        assert inet_checksum(payload) == 0
        got = dec4(payload, pseudo_header=False, strict_checksum=True)
        assert (got.checksum, got.vrid) == ("no-pseudo-header", adv.vrid)


@pytest.mark.rfc("9568-5.2.8-2", "refused")
def test_strict_rfc_mode_refuses_the_pseudo_header_form():
    with_ph = v4(pseudo_header=True)
    assert inet_checksum(with_ph) != 0
    with pytest.raises(PacketError) as err:
        dec4(with_ph, pseudo_header=False, strict_checksum=True)
    assert err.value.reason == "checksum"


def test_ipv4_v3_both_checksum_forms_and_strict_mode():
    with_ph, without = v4(pseudo_header=True), v4(pseudo_header=False)
    assert with_ph[6:8] != without[6:8]
    assert inet_checksum(without) == 0                      # RFC 9568: message only
    assert dec4(with_ph).checksum == "pseudo-header"
    assert dec4(without).checksum == "no-pseudo-header"
    assert dec4(without, pseudo_header=False).checksum == "no-pseudo-header"
    assert dec4(with_ph, pseudo_header=False).checksum == "pseudo-header"
    # strict: only the configured form
    assert dec4(without, pseudo_header=False, strict_checksum=True).checksum == "no-pseudo-header"
    assert dec4(with_ph, strict_checksum=True).checksum == "pseudo-header"
    with pytest.raises(PacketError, match="checksum"):
        dec4(with_ph, pseudo_header=False, strict_checksum=True)
    with pytest.raises(PacketError, match="checksum"):
        dec4(without, pseudo_header=True, strict_checksum=True)


@pytest.mark.rfc("9568-5.2.8-3", "holds")
@pytest.mark.rfc("9568-5.2.8-3", "refused")
def test_ipv6_checksum_includes_pseudo_header():
    payload = encode(ADV6, src=S6, dst=G6, pseudo_header=False)   # ignored for IPv6
    assert decode(payload, src=S6, dst=G6, ttl=255).checksum == "pseudo-header"
    assert inet_checksum(payload) != 0                            # not the message alone
    with pytest.raises(PacketError, match="checksum"):
        decode(payload, src=S6, dst=ip("ff02::1"), ttl=255)       # wrong destination
    with pytest.raises(PacketError, match="checksum"):
        decode(payload, src=ip("fe80::3"), dst=G6, ttl=255)


def test_checksum_is_rfc1071():
    # RFC 1071 §3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert wire.inet_sum(data) == 0xDDF2 and inet_checksum(data) == 0x220D
    assert inet_checksum(b"\x01") == (~0x0100 & 0xFFFF)


# --- malformed IP layer -------------------------------------------------------------------------

@pytest.mark.rfc("9568-5.1.1.4-1", "refused")
@pytest.mark.rfc("9568-5.1.2.4-1", "refused")
def test_other_ip_protocols_never_decode():
    pkt = bytearray(build_ip_packet(ADV4, src=S4, dst=G4))
    pkt[9], pkt[10:12] = 17, b"\0\0"
    struct.pack_into("!H", pkt, 10, inet_checksum(pkt[:20]))
    with pytest.raises(PacketError, match="malformed"):
        decode_ip_packet(bytes(pkt))
    pkt6 = bytearray(build_ip_packet(ADV6, src=S6, dst=G6))
    pkt6[6] = 58
    with pytest.raises(PacketError, match="malformed"):
        decode_ip_packet(bytes(pkt6))


@pytest.mark.parametrize("mutate,reason", [
    (lambda p: p.__setitem__(0, 0x55), "malformed"),        # version 5
    (lambda p: p.__setitem__(0, 0x44), "malformed"),        # IHL 4
    (lambda p: p.__setitem__(11, p[11] ^ 1), "checksum"),   # header checksum
    (lambda p: p.__setitem__(3, 0xFF), "length"),           # total length beyond data
])
def test_ipv4_header_checks(mutate, reason):
    pkt = bytearray(build_ip_packet(ADV4, src=S4, dst=G4))
    mutate(pkt)
    with pytest.raises(PacketError) as err:
        decode_ip_packet(bytes(pkt))
    assert err.value.reason == reason


def test_fragments_are_refused():
    pkt = bytearray(build_ip_packet(ADV4, src=S4, dst=G4))
    pkt[6], pkt[10:12] = 0x20, b"\0\0"                        # MF
    struct.pack_into("!H", pkt, 10, inet_checksum(pkt[:20]))
    with pytest.raises(PacketError, match="malformed"):
        decode_ip_packet(bytes(pkt))


# --- found by the fuzzer (tests/fuzz) ----------------------------------------------------------

HKEY = b"0123456789abcdef0123456789abcdef"


def _hmac_with_reserved(reserved: bytes, sign_received_bytes: bool) -> bytes:
    """A v3 hmac-sha256 advert whose trailer Reserved field is `reserved`, the tag computed over
    the bytes sent (as docs/hmac-sha256.md writes it) or over the zeros vmacd sends."""
    good = encode(ADV4, src=S4, dst=G4, auth=AuthSpec("hmac-sha256", HKEY), counter=5)
    std, trailer = good[:-28], bytearray(good[-28:])
    trailer[2:4] = reserved
    if sign_received_bytes:
        phdr = wire.pseudo_header(S4, G4, len(good))
        trailer[12:] = hmac.new(HKEY, phdr + std + bytes(trailer[:12]), hashlib.sha256).digest()[:16]
    return std + bytes(trailer)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("verify", [True, False])
def test_hmac_trailer_reserved_bytes_must_be_zero(signed, verify):
    """The tag does not cover Reserved as received: a changed Reserved must not pass unnoticed."""
    packet = _hmac_with_reserved(b"\x00\x6c", signed)
    with pytest.raises(PacketError) as err:
        dec4(packet, auth=AuthSpec("hmac-sha256", HKEY), verify_auth=verify)
    assert err.value.reason == "auth" and "reserved" in err.value.detail
    ok = dec4(_hmac_with_reserved(b"\0\0", False), auth=AuthSpec("hmac-sha256", HKEY), verify_auth=verify)
    assert dict(ok.auth_info)["counter"] == 5


def test_address_cache_makes_each_address_once_and_stays_bounded():
    from vmacd.core.proto import AddressCache
    v4 = AddressCache(ipaddress.IPv4Address, bound=2)
    first = v4(b"\xc0\x00\x02\x01")
    assert first is v4(b"\xc0\x00\x02\x01") and first == ipaddress.IPv4Address("192.0.2.1")
    for i in range(10):                     # forged sources: the cache is emptied, not grown
        assert v4(bytes([198, 51, 100, i])) == ipaddress.IPv4Address(f"198.51.100.{i}")
        assert len(v4._known) <= 3
    v6 = AddressCache(ipaddress.IPv6Address)
    ll = ipaddress.IPv6Address("fe80::1")
    assert v6("fe80::1") == v6(ll.packed) == ll
