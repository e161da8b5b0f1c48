"""Per-interface sysctls for the macvlan design (the why is in docs/linux.md "sysctls").

- Parent and vMAC, IPv4: ``arp_ignore=1`` (answer ARP only for addresses on the interface the
  request came in on, so the parent never answers for a VIP held by the vMAC with its own MAC,
  RFC 9568 8.1.2-2) and ``arp_announce=2`` (ARP requests use a source address of the outgoing
  interface, never a VIP through the parent's MAC).
- vMAC (both families: an IPv6 vMAC must not answer ARP for IPv4 VIPs either), IPv4:
  ``arp_ignore=1``, ``arp_announce=2`` and ``rp_filter=2`` (loose). Traffic to a VIP comes in on
  the vMAC while the route back goes through the parent; strict mode would drop it. The kernel uses
  max(all, dev).
- vMAC of an IPv4 instance: ``disable_ipv6=1`` (no link-local, no MLD, no DAD from the vMAC).
- vMAC of an IPv6 instance: ``accept_ra=0``, ``router_solicitations=0``, ``accept_dad=0``,
  ``dad_transmits=0`` (no RS or DAD from the vMAC; VIPs are added with nodad anyway).

`SysctlGuard` remembers every old value it changed and puts them back on `restore()`; the vMAC
settings are not restored because vmacd deletes that device on exit.
"""
from __future__ import annotations

import os
from types import TracebackType
from typing import Self

ROOT = "/proc/sys/net"

# accept_local: an address owner advertises from its own address, which a backup that took over
# holds as a VIP; without it the kernel drops those adverts as martians (source is local) and
# the owner's return never ends the backup's mastership.
PARENT_V4 = {"arp_ignore": "1", "arp_announce": "2", "accept_local": "1"}
VMAC_V4 = {"arp_ignore": "1", "arp_announce": "2", "rp_filter": "2"}
VMAC_V6_OFF = {"disable_ipv6": "1"}
# forwarding=1 on the vMAC alone is Linux's per-interface router behaviour (it forwards nothing
# by itself: that is net.ipv6.conf.all.forwarding): NAs for the VIPs carry the Router flag
# (RFC 9568 §6.4.3-4) and the device never sends router solicitations.
VMAC_V6 = {"forwarding": "1", "accept_ra": "0", "router_solicitations": "0", "accept_dad": "0",
           "dad_transmits": "0", "addr_gen_mode": "1"}


class SysctlError(Exception):
    """A sysctl could not be read or written; the message names the path."""


def path(family: int, ifname: str, key: str) -> str:
    """/proc/sys/net/ipv{4,6}/conf/<ifname>/<key>."""
    if "/" in ifname or ifname in ("", ".", ".."):
        raise SysctlError(f"bad interface name {ifname!r}")
    return f"{ROOT}/ipv{family}/conf/{ifname}/{key}"


def read(p: str) -> str:
    """Read one sysctl value (stripped)."""
    try:
        with open(p, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise SysctlError(f"cannot read {p}: {exc.strerror}") from None


def write(p: str, value: str) -> None:
    """Write one sysctl value."""
    try:
        fd = os.open(p, os.O_WRONLY)
        try:
            os.write(fd, value.encode("ascii"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise SysctlError(f"cannot write {value} to {p}: {exc.strerror}") from None


def prepare_vmac(ifname: str, family: int) -> None:
    """Settings for a fresh (DOWN) vMAC macvlan: silence and ARP behaviour. Not restored.

    The IPv4 ARP settings go on IPv6 vMACs too: with the default arp_ignore=0 an IPv6 vMAC
    would answer ARP for the IPv4 VIPs of other instances with its 00:00:5e:00:02:xx MAC.
    """
    for key, value in VMAC_V4.items():
        write(path(4, ifname, key), value)
    six = VMAC_V6_OFF if family == 4 else VMAC_V6
    for key, value in six.items():
        write(path(6, ifname, key), value)


class SysctlGuard:
    """Set sysctls, remember the old values, restore them (context manager or `restore()`)."""

    def __init__(self) -> None:
        self._saved: dict[str, str] = {}

    def set(self, p: str, value: str) -> None:
        """Set `p` to `value`, remembering the first old value seen for `p`."""
        old = read(p)
        self._saved.setdefault(p, old)
        if old != value:
            write(p, value)

    def configure_parent(self, ifname: str) -> None:
        """arp_ignore=1, arp_announce=2 on the parent (needed in both vmac modes)."""
        for key, value in PARENT_V4.items():
            self.set(path(4, ifname, key), value)

    def restore(self) -> list[str]:
        """Put back every old value; return the errors (e.g. an interface that went away)."""
        errors = []
        for p, old in self._saved.items():
            if not os.path.exists(p):
                continue
            try:
                write(p, old)
            except SysctlError as exc:
                errors.append(str(exc))
        self._saved.clear()
        return errors

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _et: type[BaseException] | None, _ev: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.restore()
