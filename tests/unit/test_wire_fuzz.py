"""Hypothesis: whatever bytes arrive, only PacketError escapes decode() / decode_ip_packet()."""
from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmacd.core.auth import AuthSpec
from vmacd.core.wire import (
    Advertisement,
    PacketError,
    build_ip_packet,
    decode,
    decode_ip_packet,
)

ip = ipaddress.ip_address
KEY = b"k" * 32
SEEDS = [
    build_ip_packet(Advertisement(3, 1, 100, 100, (ip("192.0.2.1"),)), src="192.0.2.2", dst="224.0.0.18"),
    build_ip_packet(Advertisement(3, 1, 100, 100, (ip("fe80::1"),)), src="fe80::2", dst="ff02::12"),
    build_ip_packet(Advertisement(2, 1, 100, 100, (ip("192.0.2.1"),)), src="192.0.2.2", dst="224.0.0.18"),
    build_ip_packet(Advertisement(2, 1, 100, 100, (ip("192.0.2.1"),)), src="192.0.2.2",
                    dst="224.0.0.18", auth=AuthSpec("ah", b"pw"), counter=5),
    build_ip_packet(Advertisement(3, 1, 100, 100, (ip("192.0.2.1"),)), src="192.0.2.2",
                    dst="224.0.0.18", auth=AuthSpec("hmac-sha256", KEY), counter=9),
]
AUTHS = st.sampled_from([None, AuthSpec("pass", b"pw"), AuthSpec("ah", b"pw"),
                         AuthSpec("hmac-sha256", KEY)])


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "grow"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[:draw(st.integers(0, len(data)))]
        else:
            data += draw(st.binary(max_size=40))
    return bytes(data)


def _only_packet_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except PacketError as err:
        assert err.reason and isinstance(err.detail, str)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=120), mutated()), auth=AUTHS, verify=st.booleans(),
       strict=st.booleans())
def test_decode_ip_packet_raises_only_packet_error(data, auth, verify, strict):
    _only_packet_error(decode_ip_packet, data, auth, verify_auth=verify, strict_checksum=strict)


@settings(max_examples=800, deadline=None)
@given(data=st.one_of(st.binary(max_size=120), mutated().map(lambda b: b[20:])),
       six=st.booleans(), ttl=st.one_of(st.none(), st.integers(0, 255)),
       auth=st.sampled_from([None, AuthSpec("pass", b"pw"), AuthSpec("hmac-sha256", KEY)]),
       verify=st.booleans())
def test_decode_payload_raises_only_packet_error(data, six, ttl, auth, verify):
    src, dst = ("fe80::2", "ff02::12") if six else ("192.0.2.2", "224.0.0.18")
    _only_packet_error(decode, data, src=src, dst=dst, ttl=ttl, auth=auth, verify_auth=verify)
