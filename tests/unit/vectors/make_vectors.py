"""Regenerate golden.json: `python tests/unit/vectors/make_vectors.py > tests/unit/vectors/golden.json`.

Standard packets are built by scapy (an independent implementation), never by vmacd; the IPv4 v3
no-pseudo-header form has its checksum recomputed by hand (RFC 9568 §5.2.8) because scapy only
knows the pseudo-header form. Auth vectors (AH, hmac-sha256) are built by vmacd with fixed keys
and counters: they pin our wire format so it cannot drift silently.
"""
from __future__ import annotations

import ipaddress
import json

from scapy.all import IP, IPv6, raw
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum

from vmacd.core.auth import AuthSpec
from vmacd.core.wire import Advertisement, build_ip_packet

G4, G6 = "224.0.0.18", "ff02::12"


def v4_no_pseudo(pkt: bytes) -> bytes:
    vr = bytearray(pkt[20:])
    vr[6:8] = b"\0\0"
    ck = checksum(bytes(vr))
    vr[6:8] = ck.to_bytes(2, "big")
    return pkt[:20] + bytes(vr)


def main() -> None:
    v = []
    v3_4 = raw(IP(src="192.0.2.2", dst=G4, ttl=255, tos=0xC0) /
               VRRPv3(vrid=51, priority=150, adv=100, addrlist=["192.0.2.254", "192.0.2.253"]))
    v.append({"name": "v3-ipv4-pseudo-header", "hex": v3_4.hex(), "expect": {
        "version": 3, "type": 1, "vrid": 51, "priority": 150, "interval_ms": 1000,
        "addresses": ["192.0.2.254", "192.0.2.253"], "src": "192.0.2.2", "dst": G4, "ttl": 255,
        "checksum": "pseudo-header", "auth": {"type": "none"}}})
    v.append({"name": "v3-ipv4-no-pseudo-header", "hex": v4_no_pseudo(v3_4).hex(),
              "expect": dict(v[-1]["expect"], checksum="no-pseudo-header")})
    v3_6 = raw(IPv6(src="fe80::2", dst=G6, hlim=255) /
               VRRPv3(vrid=5, priority=255, adv=5, addrlist=["fe80::1", "2001:db8::1"]))
    v.append({"name": "v3-ipv6", "hex": v3_6.hex(), "expect": {
        "version": 3, "type": 1, "vrid": 5, "priority": 255, "interval_ms": 50,
        "addresses": ["fe80::1", "2001:db8::1"], "src": "fe80::2", "dst": G6, "ttl": 255,
        "checksum": "pseudo-header", "auth": {"type": "none"}}})
    v2 = raw(IP(src="192.0.2.3", dst=G4, ttl=255) /
             VRRP(vrid=7, priority=0, adv=3, addrlist=["192.0.2.1"]))
    v.append({"name": "v2-none-priority-0", "hex": v2.hex(), "expect": {
        "version": 2, "type": 1, "vrid": 7, "priority": 0, "interval_ms": 3000,
        "addresses": ["192.0.2.1"], "src": "192.0.2.3", "dst": G4, "ttl": 255, "checksum": "v2",
        "auth": {"type": "none"}}})
    v2p = raw(IP(src="192.0.2.3", dst=G4, ttl=255) /
              VRRP(vrid=7, priority=100, adv=1, authtype=1, addrlist=["192.0.2.1"],
                   auth1=int.from_bytes(b"secr", "big"), auth2=int.from_bytes(b"et\0\0", "big")))
    v.append({"name": "v2-pass", "hex": v2p.hex(), "auth": ["pass", "secret"], "expect": {
        "version": 2, "type": 1, "vrid": 7, "priority": 100, "interval_ms": 1000,
        "addresses": ["192.0.2.1"], "src": "192.0.2.3", "dst": G4, "ttl": 255, "checksum": "v2",
        "auth": {"type": "pass", "verified": True}}})
    adv2 = Advertisement(2, 9, 100, 100, (ipaddress.ip_address("192.0.2.1"),))
    ah = build_ip_packet(adv2, src="192.0.2.3", dst=G4, auth=AuthSpec("ah", b"vmacd"),
                         counter=1, ident=1)
    v.append({"name": "v2-ah", "hex": ah.hex(), "auth": ["ah", "vmacd"], "expect": {
        "version": 2, "type": 1, "vrid": 9, "priority": 100, "interval_ms": 1000,
        "addresses": ["192.0.2.1"], "src": "192.0.2.3", "dst": G4, "ttl": 255, "checksum": "v2",
        "auth": {"type": "ah", "spi": 0xC0000203, "seq": 1, "verified": True}}})
    key = b"0123456789abcdef0123456789abcdef"
    adv3 = Advertisement(3, 51, 150, 10, (ipaddress.ip_address("192.0.2.254"),))
    hm = build_ip_packet(adv3, src="192.0.2.2", dst=G4, auth=AuthSpec("hmac-sha256", key),
                         counter=1_700_000_000_000_000)
    v.append({"name": "v3-ipv4-hmac-sha256", "hex": hm.hex(),
              "auth": ["hmac-sha256", key.decode()],
              "expect": {"version": 3, "type": 1, "vrid": 51, "priority": 150, "interval_ms": 100,
                         "addresses": ["192.0.2.254"], "src": "192.0.2.2", "dst": G4, "ttl": 255,
                         "checksum": "pseudo-header",
                         "auth": {"type": "hmac-sha256", "counter": 1_700_000_000_000_000,
                                  "key_id": 0, "verified": True}}})
    bad_ttl = raw(IP(src="192.0.2.2", dst=G4, ttl=254) / VRRPv3(vrid=1, addrlist=["192.0.2.1"]))
    v.append({"name": "bad-ttl-254", "hex": bad_ttl.hex(), "error": "ttl"})
    bad_ck = bytearray(v3_4)
    bad_ck[-1] ^= 0x01
    v.append({"name": "bad-checksum-flipped-bit", "hex": bytes(bad_ck).hex(), "error": "checksum"})
    # keepalived's and FRR's usual IPv6 list (no link-local): accepted and marked by default,
    # refused with strict_link_local (RFC 9568 §7.1, erratum 8300)
    global_v6 = raw(IPv6(src="fe80::2", dst=G6, hlim=255) / VRRPv3(vrid=5, addrlist=["2001:db8::1"]))
    v.append({"name": "v3-ipv6-global-first", "hex": global_v6.hex(), "expect": {
        "version": 3, "type": 1, "vrid": 5, "priority": 100, "interval_ms": 1000,
        "addresses": ["2001:db8::1"], "src": "fe80::2", "dst": G6, "ttl": 255,
        "checksum": "pseudo-header", "auth": {"type": "none"}, "first_not_link_local": True}})
    v.append({"name": "bad-ipv6-first-not-link-local", "hex": global_v6.hex(), "error": "addresses",
              "options": {"strict_link_local": True}})
    print(json.dumps(v, indent=1))


if __name__ == "__main__":
    main()
