"""The VRRP codec: golden vectors, encoding, round trips, frames (the receive side's drop
reasons and checksum forms: test_wire_decode.py)."""
from __future__ import annotations

import ipaddress
import json
import pathlib
import struct

import pytest

from vmacd.cli.decode import to_json
from vmacd.core import wire
from vmacd.core.auth import AuthSpec
from vmacd.core.wire import (
    Advertisement,
    PacketError,
    UsageError,
    build_frame,
    build_ip_packet,
    decode,
    decode_ip_packet,
    encode,
    inet_checksum,
)

ip = ipaddress.ip_address
G4, G6 = ip("224.0.0.18"), ip("ff02::12")
S4, S6 = ip("192.0.2.2"), ip("fe80::2")
ADV4 = Advertisement(3, 51, 150, 100, (ip("192.0.2.254"), ip("192.0.2.253")))
ADV6 = Advertisement(3, 5, 200, 50, (ip("fe80::1"), ip("2001:db8::1")))
ADV2 = Advertisement(2, 7, 100, 300, (ip("192.0.2.1"),))
VECTORS = json.loads((pathlib.Path(__file__).parent / "vectors" / "golden.json").read_text())


def v4(adv=ADV4, **kw):
    return encode(adv, src=S4, dst=G4, **kw)


def dec4(payload, **kw):
    kw.setdefault("ttl", 255)
    return decode(payload, src=S4, dst=G4, **kw)


def refix_v3_v4(payload: bytes, pseudo: bool = True) -> bytes:
    """Recompute the checksum of a modified IPv4 v3 payload (so only the field under test is bad)."""
    msg = bytearray(payload)
    msg[6:8] = b"\0\0"
    start = wire.inet_sum(wire.pseudo_header(S4, G4, len(msg))) if pseudo else 0
    struct.pack_into("!H", msg, 6, inet_checksum(msg, start))
    return bytes(msg)


# --- golden vectors --------------------------------------------------------------------------

@pytest.mark.rfc("9568-5.2.8-1", "holds")
@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_vector(vec):
    spec = AuthSpec(vec["auth"][0], vec["auth"][1].encode()) if "auth" in vec else None
    packet, options = bytes.fromhex(vec["hex"]), vec.get("options", {})
    if "error" in vec:
        with pytest.raises(PacketError) as err:
            decode_ip_packet(packet, spec, **options)
        assert err.value.reason == vec["error"]
        return
    assert to_json(decode_ip_packet(packet, spec, **options)) == vec["expect"]


@pytest.mark.rfc("9568-5.2.8-1", "refused")
@pytest.mark.rfc("9568-7.1-6", "refused")
@pytest.mark.parametrize("vec", [v for v in VECTORS if "error" not in v and "auth" not in v],
                         ids=lambda v: v["name"])
def test_every_single_bit_flip_in_a_golden_vrrp_message_is_refused(vec):
    packet = bytes.fromhex(vec["hex"])
    hlen = 40 if packet[0] >> 4 == 6 else 20
    for i in range(hlen, len(packet)):
        for bit in range(8):
            bad = bytearray(packet)
            bad[i] ^= 1 << bit
            with pytest.raises(PacketError):
                decode_ip_packet(bytes(bad))


# --- encoding --------------------------------------------------------------------------------

@pytest.mark.rfc("9568-5.2.1-1", "holds")
@pytest.mark.rfc("9568-5.2.2-1", "holds")
@pytest.mark.rfc("9568-5.2.3-1", "holds")
@pytest.mark.rfc("9568-5.2.5-1", "holds")
@pytest.mark.rfc("9568-5.2.7-1", "holds")
def test_v3_header_layout():
    p = v4()
    assert p[:6] == bytes([0x31, 51, 150, 2, 0x00, 0x64])
    assert p[8:] == ip("192.0.2.254").packed + ip("192.0.2.253").packed
    big = Advertisement(3, 1, 100, 4095, (ip("192.0.2.1"),))
    assert v4(big)[4:6] == b"\x0f\xff"


@pytest.mark.rfc("9568-5.2.1-1", "refused")
@pytest.mark.rfc("9568-5.2.2-1", "refused")
@pytest.mark.rfc("9568-5.2.7-1", "refused")
@pytest.mark.rfc("9568-5.2.5-1", "refused")
@pytest.mark.parametrize("bad", [
    {"version": 4}, {"version": 1}, {"type": 2}, {"vrid": 0}, {"vrid": 256},
    {"priority": 256}, {"interval_cs": 0}, {"interval_cs": 4096}, {"addresses": ()},
])
def test_encoder_refuses_unsendable_fields(bad):
    fields = {"version": 3, "vrid": 1, "priority": 100, "interval_cs": 100,
              "addresses": (ip("192.0.2.1"),)}
    fields.update(bad)
    with pytest.raises(UsageError):
        encode(Advertisement(**fields), src=S4, dst=G4)


@pytest.mark.rfc("9568-5.2.6-1", "holds")
def test_reserve_nibble_is_sent_as_zero():
    assert v4()[4] >> 4 == 0
    # a v2 message has no Reserve nibble; a v3 one never carries anything but 0 there
    for cs in (1, 100, 2048, 4095):
        assert v4(Advertisement(3, 1, 1, cs, (ip("192.0.2.1"),)))[4] >> 4 == 0


@pytest.mark.rfc("9568-5.2.6-1", "refused")
@pytest.mark.parametrize("cs", [0x1000, 0x1064, 0xF064, 0xFFFF])
def test_an_interval_that_would_reach_the_reserve_nibble_is_refused(cs):
    """The only way a value could land in Reserve is an interval above 12 bits: never sent."""
    with pytest.raises(UsageError, match=r"1\.\.4095 centiseconds"):
        v4(Advertisement(3, 1, 100, cs, (ip("192.0.2.1"),)))
    with pytest.raises(UsageError, match=r"1\.\.4095 centiseconds"):
        build_ip_packet(Advertisement(3, 1, 100, cs, ADV6.addresses), src=S6, dst=G6)


@pytest.mark.rfc("9568-5.1.1.1-1", "refused")
@pytest.mark.rfc("9568-7.2-4", "refused")
def test_ipv4_source_is_never_a_virtual_address():
    assert decode_ip_packet(build_ip_packet(ADV4, src=S4, dst=G4)).src == S4
    for vip in ADV4.addresses:
        with pytest.raises(UsageError, match="virtual address"):
            encode(ADV4, src=vip, dst=G4)
        with pytest.raises(UsageError, match="virtual address"):
            build_ip_packet(ADV4, src=vip, dst=G4)


@pytest.mark.rfc("9568-5.1.2.1-1", "holds")
@pytest.mark.rfc("9568-5.1.2.1-1", "refused")
@pytest.mark.rfc("9568-5.2.9-1", "refused")
def test_ipv6_source_is_link_local_and_first_address_link_local():
    assert decode_ip_packet(build_ip_packet(ADV6, src=S6, dst=G6)).src == S6
    with pytest.raises(UsageError, match="link-local"):
        encode(ADV6, src=ip("2001:db8::2"), dst=G6)
    with pytest.raises(UsageError, match="virtual address"):
        encode(ADV6, src=ip("fe80::1"), dst=G6)
    with pytest.raises(UsageError, match="link-local address in an IPv6 list comes first"):
        encode(Advertisement(3, 5, 200, 50, (ip("2001:db8::1"), ip("fe80::1"))), src=S6, dst=G6)


def test_ipv6_list_without_link_local_is_sendable():
    """keepalived's and FRR's usual list: the codec sends it (the config decides whether to, with
    `ipv6_link_local_first = false`); the receiver marks it."""
    bare = Advertisement(3, 5, 200, 50, (ip("2001:db8::1"), ip("2001:db8::2")))
    got = decode(encode(bare, src=S6, dst=G6), src=S6, dst=G6, ttl=255)
    assert got.addresses == bare.addresses and got.first_not_link_local


@pytest.mark.rfc("9568-5.2.9-1", "holds")
@pytest.mark.rfc("9568-5.2.9-2", "holds")
@pytest.mark.rfc("9568-5.2.9-2", "refused")
def test_addresses_keep_order_and_family():
    assert decode(encode(ADV6, src=S6, dst=G6), src=S6, dst=G6, ttl=255).addresses == ADV6.addresses
    with pytest.raises(UsageError, match="one family"):
        encode(Advertisement(3, 5, 1, 1, (ip("192.0.2.1"),)), src=S6, dst=G6)
    with pytest.raises(UsageError, match="one family"):
        encode(ADV4, src=S4, dst=G6)


@pytest.mark.rfc("9568-5.1.1.3-1", "holds")
@pytest.mark.rfc("9568-5.1.1.4-1", "holds")
@pytest.mark.rfc("9568-5.1.1.2-1", "holds")
@pytest.mark.rfc("9568-7.2-6", "holds")
def test_ipv4_packet_header():
    pkt = build_ip_packet(ADV4, src=S4, dst=G4, ident=7)
    assert pkt[0] == 0x45 and pkt[1] == 0xC0 and pkt[8] == 255 and pkt[9] == 112
    assert struct.unpack_from("!H", pkt, 2)[0] == len(pkt) and struct.unpack_from("!H", pkt, 4)[0] == 7
    assert pkt[16:20] == G4.packed and wire.inet_sum(pkt[:20]) == 0xFFFF


@pytest.mark.rfc("9568-5.1.2.3-1", "holds")
@pytest.mark.rfc("9568-5.1.2.4-1", "holds")
@pytest.mark.rfc("9568-5.1.2.2-1", "holds")
@pytest.mark.rfc("9568-7.2-6", "refused")
def test_ipv6_packet_header():
    pkt = build_ip_packet(ADV6, src=S6, dst=G6)
    assert pkt[0] >> 4 == 6 and pkt[6] == 112 and pkt[7] == 255
    assert struct.unpack_from("!H", pkt, 4)[0] == len(pkt) - 40 and pkt[24:40] == G6.packed
    # no argument lets a caller pick another protocol or TTL: the builder has no such knob
    for p in (build_ip_packet(ADV4, src=S4, dst=G4), build_ip_packet(ADV2, src=S4, dst=G4)):
        assert (p[8], p[9]) == (255, 112)


@pytest.mark.rfc("9568-7.2-2", "holds")
@pytest.mark.rfc("9568-7.2-2", "refused")
def test_every_encoded_advert_carries_a_fresh_checksum():
    for prio in (0, 1, 100, 254, 255):
        adv = Advertisement(3, 51, prio, 100, ADV4.addresses)
        assert dec4(v4(adv)).priority == prio
    # the same priority change without a new checksum would be refused
    stale = bytearray(v4())
    stale[2] = 151
    with pytest.raises(PacketError, match="checksum"):
        dec4(bytes(stale))


def test_encode_is_cached_not_rebuilt():
    adv = Advertisement(3, 77, 120, 100, (ip("192.0.2.77"),))
    first = encode(adv, src=S4, dst=G4)
    assert encode(adv, src=S4, dst=G4) is first                   # the same bytes object
    assert encode(adv, src=S4, dst=G4, pseudo_header=False) is not first


@pytest.mark.rfc("9568-8.4.2-5", "holds")
@pytest.mark.parametrize("seconds", [1, 3, 255])
def test_v2_interval_seconds_become_centiseconds(seconds):
    adv = Advertisement(2, 7, 100, seconds * 100, (ip("192.0.2.1"),))
    p = encode(adv, src=S4, dst=G4)
    assert p[5] == seconds                             # whole seconds on the wire
    assert decode(p, src=S4, dst=G4, ttl=255).interval_cs == seconds * 100


@pytest.mark.rfc("9568-8.4.2-5", "refused")     # 1.5 s cannot be sent as v2; 3 s is never 3 cs
def test_v2_interval_is_whole_seconds():
    p = encode(ADV2, src=S4, dst=G4)
    assert p[5] == 3 and p[4] == 0 and len(p) == 8 + 4 + 8
    assert decode(p, src=S4, dst=G4, ttl=255).interval_cs == 300
    with pytest.raises(UsageError, match="whole seconds"):
        encode(Advertisement(2, 7, 100, 150, (ip("192.0.2.1"),)), src=S4, dst=G4)
    with pytest.raises(UsageError, match="IPv4 only"):
        encode(Advertisement(2, 7, 100, 100, ADV6.addresses), src=S6, dst=G6)


# --- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("adv,src,dst", [(ADV4, S4, G4), (ADV6, S6, G6), (ADV2, S4, G4),
                                         (ADV4, S4, ip("192.0.2.9"))])
@pytest.mark.parametrize("pseudo", [True, False])
def test_round_trip_payload_and_ip_packet(adv, src, dst, pseudo):
    back = decode(encode(adv, src=src, dst=dst, pseudo_header=pseudo), src=src, dst=dst, ttl=255,
                  pseudo_header=pseudo)
    assert (back.version, back.vrid, back.priority, back.interval_cs, back.addresses) == \
        (adv.version, adv.vrid, adv.priority, adv.interval_cs, adv.addresses)
    assert (back.src, back.dst, back.ttl) == (src, dst, 255)
    whole = decode_ip_packet(build_ip_packet(adv, src=src, dst=dst, pseudo_header=pseudo),
                             pseudo_header=pseudo)
    assert whole == back


# --- frames ------------------------------------------------------------------------------------

def test_build_frame_multicast_and_unicast():
    f4 = build_frame("00:00:5e:00:01:33", build_ip_packet(ADV4, src=S4, dst=G4))
    assert f4[:6] == bytes.fromhex("01005e000012") and f4[6:12] == bytes.fromhex("00005e000133")
    assert f4[12:14] == b"\x08\x00"
    f6 = build_frame("00:00:5e:00:02:05", build_ip_packet(ADV6, src=S6, dst=G6))
    assert f6[:6] == bytes.fromhex("333300000012") and f6[12:14] == b"\x86\xdd"
    uni = build_ip_packet(ADV4, src=S4, dst=ip("192.0.2.9"))
    with pytest.raises(UsageError, match="dst_mac"):
        build_frame("00:00:5e:00:01:33", uni)
    assert build_frame("00:00:5e:00:01:33", uni, "02:00:00:00:00:09")[:6] == bytes.fromhex("020000000009")
    with pytest.raises(UsageError, match="MAC"):
        build_frame("00:00:5e:00:01", uni, "02:00:00:00:00:09")
