"""VRRP protocol constants, the decoded advertisement and the codec's errors: one place for each.

Everything here is data: the codec (wire.py), authentication (auth.py), L2 builders (l2.py), the
state machine and the daemon import from this module, never from each other for these names.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_A = TypeVar("_A", ipaddress.IPv4Address, ipaddress.IPv6Address)


class AddressCache(Generic[_A]):
    """Address objects of the few peers of a LAN, each made once from its packed bytes or text
    (the receive path is hot); bounded, so a flood of forged sources cannot grow it."""

    __slots__ = ("_bound", "_cls", "_known")

    def __init__(self, cls: type[_A], bound: int = 4096) -> None:
        self._cls: type[_A] = cls
        self._known: dict[bytes | str, _A] = {}
        self._bound = bound

    def __call__(self, raw: bytes | str) -> _A:
        addr = self._known.get(raw)
        if addr is None:
            if len(self._known) > self._bound:
                self._known.clear()
            addr = self._known[raw] = self._cls(raw)
        return addr

#: IP protocol numbers: VRRP (RFC 9568 §5.1.1.4) and IPsec AH (VRRPv2 authentication type 2).
VRRP_PROTO = 112
IPPROTO_AH = 51
#: IPsec AH with HMAC-MD5-96 as keepalived sends it: next header, length, reserved, SPI,
#: sequence number, 12-byte ICV (RFC 2402).
AH_LEN = 24
#: The VRRP multicast groups (RFC 9568 §5.1.1.2, §5.1.2.2).
VRRP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = ipaddress.IPv6Address("ff02::12")
TTL = 255                            # sent and required on receipt (RFC 9568 §5.1.1.3 / §5.1.2.3)
HEADER_LEN = 8                       # Version/Type, VRID, Priority, Count, interval/auth, checksum

#: The reasons a received packet is dropped: also the `vmacd_packets_dropped_total{reason}` labels.
DROP_REASONS = (
    "ttl", "checksum", "version", "type", "length", "vrid",
    "auth", "replay", "interval", "addresses", "malformed",
)

#: Which checksum form a received advertisement carried (`vmacd decode` key `checksum`).
CHECKSUM_V2 = "v2"
CHECKSUM_PSEUDO = "pseudo-header"
CHECKSUM_NO_PSEUDO = "no-pseudo-header"


def vmac(vrid: int, family: int) -> str:
    """The virtual router MAC (RFC 9568 §7.3): 00:00:5e:00:01:{VRID} for IPv4 (family 4),
    00:00:5e:00:02:{VRID} for IPv6 (family 6)."""
    if not isinstance(vrid, int) or not 1 <= vrid <= 255:
        raise UsageError(f"vrid must be 1..255, got {vrid!r}")
    if family not in (4, 6):
        raise UsageError(f"family must be 4 or 6, got {family!r}")
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


def mac_bytes(mac: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' -> 6 bytes; UsageError for anything else."""
    parts = mac.split(":") if isinstance(mac, str) else []
    try:
        raw = bytes(int(p, 16) for p in parts if len(p) in (1, 2))
    except ValueError:
        raw = b""
    if len(parts) != 6 or len(raw) != 6:
        raise UsageError(f"not a MAC address: {mac!r}")
    return raw


class PacketError(ValueError):
    """A received packet is refused. `reason` is one of DROP_REASONS; `detail` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in DROP_REASONS:
            raise AssertionError(f"unknown drop reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class UsageError(ValueError):
    """The caller misused the codec (bad template or argument): our fault, never the peer's."""


@dataclass(frozen=True)
class Advertisement:
    """One VRRP advertisement as the state machine sees it.

    `interval_cs` is always centiseconds: v3 carries them (12 bits), v2 carries whole seconds
    which the codec multiplies by 100 (RFC 9568 §8.4.2). `src` is the sender's primary address
    (IPv4) or link-local (IPv6): the tie-break of §6.4.3 compares it.

    `first_not_link_local` marks a received IPv6 advert whose first address is not link-local
    (keepalived's and FRR's usual lists): accepted unless decoded with `strict_link_local`
    (RFC 9568 §7.1, erratum 8300), so the receiver can count and show it. Always False for IPv4
    and for templates.
    """

    version: int                      # 2 | 3
    vrid: int                         # 1..255
    priority: int                     # 0..255
    interval_cs: int                  # centiseconds
    addresses: tuple[IPAddress, ...]  # virtual addresses, in wire order
    src: IPAddress | None = None      # IP source (None when encoding a template)
    dst: IPAddress | None = None      # IP destination (group or unicast peer)
    ttl: int = 255                    # TTL / hop limit as received
    type: int = 1                     # ADVERTISEMENT, the only type defined
    checksum: str = ""                # CHECKSUM_* form that matched on receive
    auth_type: str = "none"           # none | pass | ah | hmac-sha256
    auth_info: tuple[tuple[str, object], ...] = field(default=())  # e.g. (("counter", 7),)
    first_not_link_local: bool = False  # IPv6 only: accepted although §5.2.9 wants link-local

    @property
    def family(self) -> int:
        return 6 if self.addresses and self.addresses[0].version == 6 else 4
