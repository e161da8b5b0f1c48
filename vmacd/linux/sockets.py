"""Raw IP sockets for VRRP (protocol 112) and AH (51): receive with metadata, unicast send.

Receive: one non-blocking socket per family and protocol, not bound to a device. The daemon
registers `fileno()` with `loop.add_reader` and calls `recv()` until it returns None.
- IPv4: the kernel hands the whole datagram; TTL, source and destination come from the IP
  header, the ifindex from IP_PKTINFO.
- IPv6: the kernel hands only the payload; hop limit from IPV6_HOPLIMIT, destination and ifindex
  from IPV6_PKTINFO. A missing hop-limit cmsg gives ``ttl=None`` so the codec drops the packet
  (RFC 9568 5.1.2.3-2: never assume 255).
Multicast mode joins 224.0.0.18 / ff02::12 on the parents and on the vMAC macvlans: in macvlan
``private`` mode, a multicast frame whose source MAC is the MAC of a local *up* macvlan (another
master using the same vMAC during a split brain) is delivered only to that macvlan, so
`Received.ifindex` may be a macvlan; the daemon maps it to its parent.

Send (unicast peers only; multicast adverts go out as full frames through `link.PacketSender`):
TTL / hop limit 255 through IP_TTL / IPV6_UNICAST_HOPS (and the multicast ones, for safety).
"""
from __future__ import annotations

import errno
import functools
import ipaddress
import socket
import struct
from typing import NamedTuple

IPPROTO_VRRP = 112
IPPROTO_AH = 51
GROUP_V4 = "224.0.0.18"
GROUP_V6 = "ff02::12"
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_CMSG_SPACE = socket.CMSG_SPACE(64) * 2
_MAX = 65535


@functools.lru_cache(maxsize=4096)
def _ip4(raw: bytes) -> ipaddress.IPv4Address:
    """Address objects of the few peers of a LAN, made once (the receive path is hot)."""
    return ipaddress.IPv4Address(raw)


@functools.lru_cache(maxsize=4096)
def _ip6(raw: bytes | str) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(raw)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Received(NamedTuple):
    """One datagram as received. `data` is the IP payload (VRRP, or AH+VRRP for protocol 51);
    `header` is the IPv4 header (b"" for IPv6, where the kernel never shows it)."""

    data: bytes
    src: IPAddress
    dst: IPAddress | None
    ttl: int | None
    ifindex: int
    proto: int = IPPROTO_VRRP
    header: bytes = b""


class SocketError(Exception):
    """A socket could not be opened or configured; the message says why (e.g. not root)."""


class VrrpSocket:
    """A raw socket for one family (4 | 6) and protocol (112 | 51)."""

    def __init__(self, family: int, proto: int = IPPROTO_VRRP) -> None:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, got {family}")
        self.family = family
        self.proto = proto
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            self.sock = socket.socket(af, socket.SOCK_RAW, proto)
        except PermissionError:
            raise SocketError("raw sockets need root or CAP_NET_RAW") from None
        self.sock.setblocking(False)
        self.joined: set[int] = set()
        self.errors: dict[str, int] = {}
        if family == 4:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)

    def fileno(self) -> int:
        """The fd to register with the event loop."""
        return self.sock.fileno()

    # ---- multicast membership ------------------------------------------------------------
    def join(self, ifindex: int) -> None:
        """Join the VRRP group on `ifindex` (idempotent; works on a DOWN macvlan too)."""
        if ifindex in self.joined:
            return
        self._membership(ifindex, join=True)
        self.joined.add(ifindex)

    def leave(self, ifindex: int) -> None:
        """Leave the VRRP group on `ifindex`; a vanished interface is not an error."""
        if ifindex not in self.joined:
            return
        self.joined.discard(ifindex)
        try:
            self._membership(ifindex, join=False)
        except SocketError:
            pass

    def _membership(self, ifindex: int, join: bool) -> None:
        if self.family == 4:
            opt = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
            mreq = struct.pack("4s4si", socket.inet_aton(GROUP_V4), b"\0" * 4, ifindex)
            level = socket.IPPROTO_IP
        else:
            opt = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
            mreq = socket.inet_pton(socket.AF_INET6, GROUP_V6) + struct.pack("@I", ifindex)
            level = socket.IPPROTO_IPV6
        try:
            self.sock.setsockopt(level, opt, mreq)
        except OSError as exc:
            if join and exc.errno == errno.EADDRINUSE:
                return
            what = "join" if join else "leave"
            raise SocketError(f"cannot {what} the VRRP group on ifindex {ifindex}: "
                              f"{exc.strerror}") from None

    # ---- receive ---------------------------------------------------------------------------
    def recv(self) -> Received | None:
        """One datagram, or None when nothing is pending (or it was unusable: counted in
        `errors`). Never raises for network conditions."""
        try:
            data, anc, _flags, addr = self.sock.recvmsg(_MAX, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._count(exc)
            return None
        if self.family == 4:
            return self._parse_v4(data, anc)
        return self._parse_v6(data, anc, addr)

    def _parse_v4(self, data: bytes, anc: list) -> Received | None:
        if len(data) < 20 or data[0] >> 4 != 4:
            self.errors["short"] = self.errors.get("short", 0) + 1
            return None
        ihl = (data[0] & 0x0F) * 4
        ifindex = 0
        for level, kind, payload in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= 12:
                ifindex = struct.unpack_from("@i", payload)[0]
        return Received(data[ihl:], _ip4(data[12:16]), _ip4(data[16:20]), data[8], ifindex,
                        data[9], data[:ihl])

    def _parse_v6(self, data: bytes, anc: list, addr: tuple) -> Received:
        ttl: int | None = None
        dst: ipaddress.IPv6Address | None = None
        ifindex = 0
        for level, kind, payload in anc:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == IPV6_HOPLIMIT and len(payload) >= 4:
                ttl = struct.unpack_from("@i", payload)[0]
            elif kind == IPV6_PKTINFO and len(payload) >= 20:
                dst = _ip6(payload[:16])
                ifindex = struct.unpack_from("@I", payload, 16)[0]
        src = _ip6(addr[0].split("%", 1)[0])
        return Received(data, src, dst, ttl, ifindex or addr[3], self.proto)

    # ---- unicast send ----------------------------------------------------------------------
    def send_unicast(self, payload: bytes, peer: str, ifindex: int = 0,
                     src: str | None = None) -> str | None:
        """Send `payload` (the VRRP message) to `peer` with TTL/hop limit 255.

        `src`/`ifindex` pin the source address and outgoing interface (IP_PKTINFO /
        IPV6_PKTINFO). Returns None on success or the errno name (counted in `errors`).
        """
        anc = []
        if self.family == 4:
            if src or ifindex:
                spec = socket.inet_aton(src or "0.0.0.0")
                anc.append((socket.IPPROTO_IP, IP_PKTINFO,
                            struct.pack("@i4s4s", ifindex, spec, b"\0" * 4)))
            dest: tuple = (peer, 0)
        else:
            if src or ifindex:
                spec = socket.inet_pton(socket.AF_INET6, src or "::")
                anc.append((socket.IPPROTO_IPV6, IPV6_PKTINFO, spec + struct.pack("@I", ifindex)))
            dest = (peer, 0, 0, ifindex)
        try:
            self.sock.sendmsg([payload], anc, 0, dest)
        except OSError as exc:
            return self._count(exc)
        return None

    def _count(self, exc: OSError) -> str:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.errors[name] = self.errors.get(name, 0) + 1
        return name

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
