"""Authentication: v2 password, keepalived-style IPsec AH HMAC-MD5-96, hmac-sha256 + ReplayGuard."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct

import pytest

from vmacd.core.auth import AuthSpec, ReplayGuard
from vmacd.core.wire import (
    Advertisement,
    PacketError,
    UsageError,
    build_ip_packet,
    decode,
    decode_ip_packet,
    encode,
    inet_checksum,
    inet_sum,
)

ip = ipaddress.ip_address
S4, G4, S6, G6 = ip("192.0.2.2"), ip("224.0.0.18"), ip("fe80::2"), ip("ff02::12")
ADV2 = Advertisement(2, 9, 100, 100, (ip("192.0.2.1"),))
ADV3 = Advertisement(3, 51, 150, 10, (ip("192.0.2.254"),))
ADV6 = Advertisement(3, 5, 150, 10, (ip("fe80::1"),))
KEY = b"0123456789abcdef0123456789abcdef"
HM = AuthSpec("hmac-sha256", KEY)


def reason(fn, *a, **kw) -> str:
    with pytest.raises(PacketError) as err:
        fn(*a, **kw)
    return err.value.reason


# --- AuthSpec -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,key,msg", [
    ("md5", b"x", "one of"), ("none", b"x", "no key"), ("pass", b"", "1..8"),
    ("pass", b"123456789", "1..8"), ("ah", b"", "1..8"), ("hmac-sha256", b"short", "at least 16"),
])
def test_authspec_refuses_bad_keys_with_clear_message(kind, key, msg):
    with pytest.raises(ValueError, match=msg):
        AuthSpec(kind, key)


def test_authspec_repr_hides_key():
    assert "0123" not in repr(HM)


# --- pass ----------------------------------------------------------------------------------------

def test_v2_password_round_trip_and_refusals():
    spec = AuthSpec("pass", b"secret")
    p = encode(ADV2, src=S4, dst=G4, auth=spec)
    assert p[4] == 1 and p[-8:] == b"secret\0\0"
    adv = decode(p, src=S4, dst=G4, ttl=255, auth=spec)
    assert adv.auth_type == "pass" and dict(adv.auth_info)["verified"] is True
    assert reason(decode, p, src=S4, dst=G4, ttl=255, auth=AuthSpec("pass", b"secreT")) == "auth"
    assert reason(decode, p, src=S4, dst=G4, ttl=255) == "auth"            # configured none
    plain = encode(ADV2, src=S4, dst=G4)
    assert reason(decode, plain, src=S4, dst=G4, ttl=255, auth=spec) == "auth"
    with pytest.raises(UsageError, match="VRRPv2"):
        encode(ADV3, src=S4, dst=G4, auth=spec)


# --- IPsec AH ------------------------------------------------------------------------------------

def keepalived_icv(packet: bytes, key: bytes) -> bytes:
    """Independent re-computation with hashlib: IP header with TOS, frag word and checksum zeroed
    (TTL kept for multicast) + AH with a zero ICV + VRRP, HMAC-MD5 with the 8-byte padded key."""
    hdr = bytearray(packet[:20])
    hdr[1], hdr[6:8], hdr[10:12] = 0, b"\0\0", b"\0\0"
    ah = bytearray(packet[20:44])
    ah[12:24] = b"\0" * 12
    return hmac.new(key.ljust(8, b"\0"), bytes(hdr) + bytes(ah) + packet[44:], hashlib.md5).digest()[:12]


def test_ah_layout_matches_keepalived():
    spec = AuthSpec("ah", b"vmacd")
    pkt = build_ip_packet(ADV2, src=S4, dst=G4, auth=spec, counter=42, ident=3)
    assert pkt[9] == 51 and pkt[8] == 255 and struct.unpack_from("!H", pkt, 2)[0] == len(pkt)
    assert pkt[20:24] == bytes([112, 4, 0, 0])                  # next header VRRP, len 4
    assert pkt[24:28] == S4.packed                              # SPI = source address
    assert struct.unpack_from("!I", pkt, 28)[0] == 42           # sequence number
    assert pkt[44] == 0x21 and pkt[48] == 2 and pkt[-8:] == b"\0" * 8   # v2, Auth Type 2
    assert pkt[32:44] == keepalived_icv(pkt, b"vmacd")
    adv = decode_ip_packet(pkt, spec)
    assert adv.auth_type == "ah" and dict(adv.auth_info) == {"spi": 0xC0000202, "seq": 42, "verified": True}


def test_ah_refusals():
    spec = AuthSpec("ah", b"vmacd")
    pkt = build_ip_packet(ADV2, src=S4, dst=G4, auth=spec, counter=1)
    assert reason(decode_ip_packet, pkt, AuthSpec("ah", b"other")) == "auth"
    assert reason(decode_ip_packet, pkt) == "auth"                         # configured none
    assert reason(decode_ip_packet, build_ip_packet(ADV2, src=S4, dst=G4), spec) == "auth"
    tampered = bytearray(pkt)
    tampered[46] = 200                                                   # priority, checksum fixed
    tampered[50:52] = b"\0\0"
    struct.pack_into("!H", tampered, 50, inet_checksum(tampered[44:]))
    assert reason(decode_ip_packet, bytes(tampered), spec) == "auth"
    # mutable fields (TOS) may change in transit without breaking the ICV
    tos = bytearray(pkt)
    tos[1], tos[10:12] = 0, b"\0\0"
    struct.pack_into("!H", tos, 10, inet_checksum(tos[:20]))
    assert decode_ip_packet(bytes(tos), spec).priority == 100
    with pytest.raises(UsageError):
        decode(pkt[44:], src=S4, dst=G4, ttl=255, auth=spec)
    with pytest.raises(UsageError, match="VRRPv2 over IPv4"):
        build_ip_packet(ADV3, src=S4, dst=G4, auth=spec, counter=1)


# --- hmac-sha256 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("adv,src,dst", [(ADV3, S4, G4), (ADV6, S6, G6), (ADV2, S4, G4)])
def test_hmac_round_trip_and_format(adv, src, dst):
    p = encode(adv, src=src, dst=dst, auth=HM, counter=77)
    std = encode(adv, src=src, dst=dst)
    assert len(p) == len(std) + 28
    assert p[len(std):len(std) + 12] == bytes([1, 0, 0, 0]) + (77).to_bytes(8, "big")
    if adv.version == 2:
        assert p[4] == 254
    else:
        assert p[:len(std)] == std                       # the standard message is untouched
    got = decode(p, src=src, dst=dst, ttl=255, auth=HM)
    assert got.auth_type == "hmac-sha256" and dict(got.auth_info)["counter"] == 77


def test_hmac_tag_is_documented_construction():
    p = encode(ADV3, src=S4, dst=G4, auth=HM, counter=5)
    std, trailer = p[:-28], p[-28:]
    phdr = S4.packed + G4.packed + struct.pack("!BBH", 0, 112, len(p))
    want = hmac.new(KEY, phdr + std + trailer[:12], hashlib.sha256).digest()[:16]
    assert trailer[12:] == want


def test_hmac_forgeries_are_refused():
    p = encode(ADV3, src=S4, dst=G4, auth=HM, counter=5)
    assert reason(decode, p, src=S4, dst=G4, ttl=255, auth=AuthSpec("hmac-sha256", b"x" * 32)) == "auth"
    assert reason(decode, p, src=ip("192.0.2.66"), dst=G4, ttl=255, auth=HM) in ("auth", "checksum")
    assert reason(decode, p, src=S4, dst=G4, ttl=255, auth=AuthSpec("hmac-sha256", KEY, 1)) == "auth"
    for i in (2, 12, len(p) - 20, len(p) - 1):             # priority, address, counter, tag
        bad = bytearray(p)
        bad[i] ^= 0x01
        assert reason(decode, bytes(bad), src=S4, dst=G4, ttl=255, auth=HM) in ("auth", "checksum")
    bad = bytearray(p)                                     # re-checksummed priority change
    bad[2] = 255
    msg = bad[:-28]
    msg[6:8] = b"\0\0"
    phdr = S4.packed + G4.packed + struct.pack("!BBH", 0, 112, len(msg))
    struct.pack_into("!H", msg, 6, inet_checksum(bytes(msg), inet_sum(phdr)))
    assert reason(decode, bytes(msg) + bytes(bad[-28:]), src=S4, dst=G4, ttl=255, auth=HM) == "auth"
    assert reason(decode, encode(ADV3, src=S4, dst=G4), src=S4, dst=G4, ttl=255, auth=HM) == "length"
    assert reason(decode, p, src=S4, dst=G4, ttl=255) == "length"


def test_hmac_encode_caches_the_prefix_and_needs_a_counter():
    a = encode(ADV3, src=S4, dst=G4, auth=HM, counter=1)
    b = encode(ADV3, src=S4, dst=G4, auth=HM, counter=2)
    assert a[:-28] == b[:-28] and a[-16:] != b[-16:]
    with pytest.raises(UsageError, match="counter"):
        encode(ADV3, src=S4, dst=G4, auth=HM)
    with pytest.raises(UsageError, match="counter"):
        encode(ADV3, src=S4, dst=G4, auth=HM, counter=2**64)


# --- replay --------------------------------------------------------------------------------------

def test_replay_guard_refuses_old_and_equal_counters():
    guard = ReplayGuard()
    adv = lambda n, src=S4: decode(encode(ADV3, src=src, dst=G4, auth=HM, counter=n),
                                   src=src, dst=G4, ttl=255, auth=HM)
    guard.check(adv(10))
    guard.check(adv(11))
    assert reason(guard.check, adv(11)) == "replay"        # replayed packet
    assert reason(guard.check, adv(3)) == "replay"         # older one
    guard.check(adv(12))                                   # refusals changed nothing: 12 > 11
    guard.check(adv(1, src=ip("192.0.2.3")))               # other sender: own counter


def test_replay_guard_handles_ah_seq_and_refuses_unauthenticated():
    spec = AuthSpec("ah", b"pw")
    guard = ReplayGuard()
    guard.check(decode_ip_packet(build_ip_packet(ADV2, src=S4, dst=G4, auth=spec, counter=2), spec))
    old = decode_ip_packet(build_ip_packet(ADV2, src=S4, dst=G4, auth=spec, counter=2), spec)
    assert reason(guard.check, old) == "replay"
    plain = decode(encode(ADV3, src=S4, dst=G4), src=S4, dst=G4, ttl=255)
    assert reason(guard.check, plain) == "replay"
    unverified = decode(encode(ADV3, src=S4, dst=G4, auth=HM, counter=99), src=S4, dst=G4,
                        ttl=255, verify_auth=False)
    assert reason(guard.check, unverified) == "replay"


def test_prepared_hmac_equals_the_standard_library_hmac():
    import hashlib
    import hmac

    from vmacd.core.auth import PreparedHmac
    for key in (b"k" * 16, b"x" * 64, b"long key " * 20):        # short, block size, hashed
        for digest in ("sha256", "md5"):
            prepared = PreparedHmac(key, digest, b"prefix-")
            for suffix in (b"", b"12345678", b"y" * 300):
                want = hmac.new(key, b"prefix-" + suffix, getattr(hashlib, digest)).digest()
                assert prepared.tag(suffix) == want
