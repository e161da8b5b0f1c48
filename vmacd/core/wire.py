"""VRRP advertisement codec (RFC 9568 §5 for v3, RFC 3768 §5 for v2). No sockets, no clock.

The codec judges the packet (length, version, type, checksum, TTL, address count, auth); the
state machine judges what it means (VRID, priority, interval). Every malformed input raises
PacketError whose `reason` is exactly a `vmacd_packets_dropped_total{reason}` label (SPEC §7).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# SPEC §7: the drop reasons, also the metric label values.
DROP_REASONS = (
    "ttl", "checksum", "version", "type", "length", "vrid",
    "auth", "replay", "interval", "addresses", "malformed",
)

VRRP_PROTO = 112
VRRP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = ipaddress.IPv6Address("ff02::12")

# Which checksum form a received advertisement carried (SPEC §3, `vmacd decode` key `checksum`).
CHECKSUM_V2 = "v2"
CHECKSUM_PSEUDO = "pseudo-header"
CHECKSUM_NO_PSEUDO = "no-pseudo-header"


class PacketError(ValueError):
    """A received packet is refused. `reason` is one of DROP_REASONS; `detail` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in DROP_REASONS:
            raise AssertionError(f"unknown drop reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Advertisement:
    """One VRRP advertisement as the state machine sees it.

    `interval_cs` is always centiseconds: v3 carries them (12 bits), v2 carries whole seconds
    which the codec multiplies by 100 (RFC 9568 §8.4.2). `src` is the sender's primary address
    (IPv4) or link-local (IPv6): the tie-break of §6.4.3 compares it.
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

    @property
    def family(self) -> int:
        return 6 if self.addresses and self.addresses[0].version == 6 else 4
