"""scapy's VRRP / VRRPv3 layers as an independent oracle, both directions.

scapy convention: its VRRPv3 layer over IPv4 computes the checksum WITH the IPv4 pseudo-header
(in4_chksum), like keepalived/FRR; over IPv6 with the IPv6 pseudo-header; VRRP (v2) over the
message only.
"""
from __future__ import annotations

import ipaddress

import pytest
from scapy.all import IP, IPv6, raw
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum

from vmacd.core.wire import Advertisement, build_ip_packet, decode_ip_packet

ip = ipaddress.ip_address


@pytest.mark.parametrize("pseudo", [
    True, pytest.param(False, marks=pytest.mark.rfc("9568-5.2.8-2", "holds"))])
@pytest.mark.parametrize("vrid,prio,cs,addrs", [(1, 100, 100, ["192.0.2.1"]),
                                                (255, 254, 4095, ["192.0.2.1", "198.51.100.7"]),
                                                (42, 0, 1, [f"203.0.113.{i}" for i in range(1, 20)])])
def test_scapy_decodes_our_v3_ipv4(vrid, prio, cs, addrs, pseudo):
    adv = Advertisement(3, vrid, prio, cs, tuple(ip(a) for a in addrs))
    sent = build_ip_packet(adv, src="192.0.2.200", dst="224.0.0.18", pseudo_header=pseudo)
    pkt = IP(sent)
    v = pkt[VRRPv3]
    assert (v.version, v.type, v.vrid, v.priority, v.ipcount, v.res, v.adv) == \
        (3, 1, vrid, prio, len(addrs), 0, cs)
    assert v.addrlist == addrs and pkt.ttl == 255 and pkt.proto == 112
    # scapy's own checksum (pseudo-header form) agrees exactly when we send that form
    wire_ck = v.chksum
    v.chksum = None
    scapy_ck = IP(raw(pkt))[VRRPv3].chksum
    assert (wire_ck == scapy_ck) is pseudo
    assert (checksum(sent[20:]) == 0) is not pseudo    # RFC 9568 form: the message alone


@pytest.mark.rfc("9568-5.2.8-3", "holds")
def test_scapy_decodes_our_v3_ipv6():
    adv = Advertisement(3, 9, 200, 25, (ip("fe80::1"), ip("2001:db8::1"), ip("2001:db8::2")))
    pkt = IPv6(build_ip_packet(adv, src="fe80::2", dst="ff02::12"))
    v = pkt[VRRPv3]
    assert (v.vrid, v.priority, v.adv, v.addrlist) == (9, 200, 25, ["fe80::1", "2001:db8::1", "2001:db8::2"])
    assert pkt.hlim == 255 and pkt.nh == 112
    ck = v.chksum
    v.chksum = None
    assert IPv6(raw(pkt))[VRRPv3].chksum == ck


def test_scapy_decodes_our_v2():
    adv = Advertisement(2, 7, 150, 500, (ip("192.0.2.1"), ip("192.0.2.2")))
    pkt = IP(build_ip_packet(adv, src="192.0.2.3", dst="224.0.0.18"))
    v = pkt[VRRP]
    assert (v.version, v.vrid, v.priority, v.adv, v.authtype, v.addrlist) == \
        (2, 7, 150, 5, 0, ["192.0.2.1", "192.0.2.2"])
    ck = v.chksum
    v.chksum = None
    assert IP(raw(pkt))[VRRP].chksum == ck


@pytest.mark.rfc("9568-7.1-6", "holds")
@pytest.mark.parametrize("vrid,prio,cs", [(1, 1, 1), (128, 100, 100), (255, 255, 4095)])
def test_we_decode_scapy_v3_ipv4_and_ipv6(vrid, prio, cs):
    p4 = raw(IP(src="192.0.2.5", dst="224.0.0.18", ttl=255) /
             VRRPv3(vrid=vrid, priority=prio, adv=cs, addrlist=["192.0.2.100"]))
    a = decode_ip_packet(p4)
    assert (a.version, a.vrid, a.priority, a.interval_cs, a.checksum) == (3, vrid, prio, cs, "pseudo-header")
    p6 = raw(IPv6(src="fe80::5", dst="ff02::12", hlim=255) /
             VRRPv3(vrid=vrid, priority=prio, adv=cs, addrlist=["fe80::1"]))
    b = decode_ip_packet(p6)
    assert (b.version, b.vrid, b.priority, b.interval_cs, b.addresses) == \
        (3, vrid, prio, cs, (ip("fe80::1"),))


def test_we_decode_scapy_v3_ipv4_without_pseudo_header():
    pkt = IP(src="192.0.2.5", dst="224.0.0.18", ttl=255) / VRRPv3(vrid=3, addrlist=["192.0.2.9"])
    body = bytearray(raw(pkt)[20:])
    body[6:8] = b"\0\0"
    pkt[VRRPv3].chksum = checksum(bytes(body))
    assert decode_ip_packet(raw(pkt)).checksum == "no-pseudo-header"
    with pytest.raises(Exception, match="checksum"):
        decode_ip_packet(raw(pkt), strict_checksum=True)


def test_we_decode_scapy_v2():
    a = decode_ip_packet(raw(IP(src="192.0.2.5", dst="224.0.0.18", ttl=255) /
                             VRRP(vrid=20, priority=90, adv=2, addrlist=["192.0.2.1", "192.0.2.4"])))
    assert (a.version, a.vrid, a.priority, a.interval_cs, a.checksum) == (2, 20, 90, 200, "v2")
    assert a.addresses == (ip("192.0.2.1"), ip("192.0.2.4"))
