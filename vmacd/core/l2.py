"""L2 announcements of a new master: virtual MAC, gratuitous ARP, unsolicited NA. Pure builders.

Only bytes are made here; linux/link.py sends them with AF_PACKET from the vMAC device.

Gratuitous ARP choice (RFC 9568 §6.4.1/§6.4.2 with erratum 7949): an ARP *request* from the vMAC,
broadcast, sender MAC = vMAC, sender IP = target IP = VIP, target MAC = vMAC. Request rather than
reply because RFC 5227 §3 specifies announcements as requests and every stack we care about
updates an existing cache entry from a broadcast request (some ignore unsolicited replies); the
target MAC is the vMAC as the RFC text says (receivers ignore it in a request).
"""
from __future__ import annotations

import functools
import ipaddress
import struct

from vmacd.core.proto import UsageError, mac_bytes, vmac
from vmacd.core.wire import inet_checksum, inet_sum, pseudo_header

__all__ = ["garp_frame", "mac_bytes", "unsolicited_na_frame", "vmac"]

ETH_BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_REQUEST = 1
ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ALL_NODES = ipaddress.IPv6Address("ff02::1")
NA_FLAGS = 0xA0000000        # R=1 (router), S=0 (unsolicited), O=1 (override) — RFC 4861 §4.4
ND_OPT_TARGET_LLADDR = 2


@functools.lru_cache(maxsize=4096)
def garp_frame(vmac: str, vip: ipaddress.IPv4Address) -> bytes:
    """Gratuitous ARP request for `vip` from `vmac`, to ff:ff:ff:ff:ff:ff (42 bytes, unpadded)."""
    vip = ipaddress.IPv4Address(vip)
    mac = mac_bytes(vmac)
    eth = ETH_BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST) + mac + vip.packed + mac + vip.packed
    return eth + arp


@functools.lru_cache(maxsize=4096)
def unsolicited_na_frame(vmac: str, src_ll: ipaddress.IPv6Address,
                         vip: ipaddress.IPv6Address) -> bytes:
    """Unsolicited Neighbor Advertisement for `vip` (RFC 4861 §7.2.6, RFC 9568 §6.4.2):
    from `src_ll` (a link-local) and `vmac` to ff02::1 / 33:33:00:00:00:01, hop limit 255,
    flags R=1 S=0 O=1, target link-layer address option = vMAC, ICMPv6 checksum filled."""
    src, target = ipaddress.IPv6Address(src_ll), ipaddress.IPv6Address(vip)
    if not src.is_link_local:
        raise UsageError(f"NA source must be a link-local address, got {src}")
    if target.is_multicast or target.is_unspecified:
        raise UsageError(f"NA target must be a unicast address, got {target}")
    mac = mac_bytes(vmac)
    icmp = bytearray(struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAGS) + target.packed
                     + bytes((ND_OPT_TARGET_LLADDR, 1)) + mac)
    csum = inet_checksum(icmp, inet_sum(pseudo_header(src, ALL_NODES, len(icmp), ICMPV6)))
    struct.pack_into("!H", icmp, 2, csum)
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, 255) + src.packed + ALL_NODES.packed
    eth = b"\x33\x33" + ALL_NODES.packed[12:] + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + bytes(icmp)

