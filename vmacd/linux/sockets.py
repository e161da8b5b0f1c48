"""Raw IP sockets for VRRP (protocol 112) and AH (51): one per interface, family and protocol.

Each socket is bound to its interface (SO_BINDTODEVICE), so it receives only that interface's
packets and the daemon knows the interface without asking the kernel per packet:
- IPv4: the kernel hands the whole datagram; TTL, source and destination come from the IP header
  (no ancillary data at all: the cheapest receive Python can do).
- IPv6: the kernel hands only the payload; hop limit from IPV6_HOPLIMIT, destination from
  IPV6_PKTINFO. A missing hop-limit cmsg gives ``None`` so the codec drops the packet
  (RFC 9568 5.1.2.3-2: never assume 255).
Multicast: the socket joins 224.0.0.18 / ff02::12 on its interface. In macvlan ``private`` mode
a multicast frame whose source MAC is one of our own up macvlans (a split brain over the same
vMAC) reaches only that macvlan: such an instance gets a second socket on its vMAC device.

The receive buffer is large (the kernel queues every advert of every VRID while the daemon is
stalled, and the daemon reads them all before it acts on a Master_Down timer). Every datagram is
stamped by the kernel on arrival (SO_TIMESTAMPNS): a backup that reads its adverts in batches
(vmacd/receiver.py) still times each one from the moment it arrived. `recv4_stamped()` and
`recv6()` return that time (CLOCK_REALTIME seconds); plain `recv()` reads skip it.

Send (unicast peers only; multicast adverts go out as full frames through `link.PacketSender`):
TTL / hop limit 255 through IP_TTL / IPV6_UNICAST_HOPS.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from vmacd.core.proto import IPPROTO_AH, VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_PROTO, AddressCache

IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
RECV_MAX = 8192            # bytes: the largest VRRP packet (255 IPv6 addresses + auth) fits
RCVBUF = 8 << 20            # bytes: a 1 s stall of 255 VRIDs at 10 ms is ~25k adverts queued
_CMSG_SPACE = socket.CMSG_SPACE(64) * 3
_STAMP_SPACE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("@qq")
__all__ = ["IPPROTO_AH", "VRRP_PROTO", "SocketError", "VrrpSocket"]


class SocketError(Exception):
    """A socket could not be opened or configured; the message says why (e.g. not root)."""


class VrrpSocket:
    """A raw socket bound to interface `ifname` for one family (4 | 6) and protocol (112 | 51)."""

    def __init__(self, family: int, ifname: str, ifindex: int, proto: int = VRRP_PROTO,
                 rcvbuf: int = RCVBUF) -> None:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, got {family}")
        self.family = family
        self.proto = proto
        self.ifname = ifname
        self.ifindex = ifindex
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            self.sock = socket.socket(af, socket.SOCK_RAW | socket.SOCK_CLOEXEC, proto)
        except PermissionError:
            raise SocketError("raw sockets need root or CAP_NET_RAW") from None
        try:
            self._configure(ifname, rcvbuf)
        except OSError as exc:
            self.sock.close()
            raise SocketError(f"cannot set up the VRRP socket on {ifname}: {exc.strerror}") from None
        self.joined = False
        self.errors: dict[str, int] = {}

    def _configure(self, ifname: str, rcvbuf: int) -> None:
        s = self.sock
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if self.family == 4:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)

    def fileno(self) -> int:
        return self.sock.fileno()

    # ---- multicast membership ------------------------------------------------------------
    def join(self) -> None:
        """Join the VRRP group on the interface (idempotent; works on a DOWN macvlan too)."""
        if not self.joined:
            self._membership(join=True)
            self.joined = True

    def _membership(self, join: bool) -> None:
        if self.family == 4:
            opt = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
            mreq = struct.pack("4s4si", VRRP_GROUP_V4.packed, b"\0" * 4, self.ifindex)
            level = socket.IPPROTO_IP
        else:
            opt = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
            mreq = VRRP_GROUP_V6.packed + struct.pack("@I", self.ifindex)
            level = socket.IPPROTO_IPV6
        try:
            self.sock.setsockopt(level, opt, mreq)
        except OSError as exc:
            if join and exc.errno == errno.EADDRINUSE:
                return
            raise SocketError(f"cannot {'join' if join else 'leave'} the VRRP group on "
                              f"{self.ifname}: {exc.strerror}") from None

    # ---- receive ---------------------------------------------------------------------------
    def recv4_stamped(self) -> tuple[bytes, float | None] | None:
        """One IPv4 datagram and its arrival time (CLOCK_REALTIME s), or None when nothing is
        pending. Never raises for network conditions (counted in `errors`)."""
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(RECV_MAX, _STAMP_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._count(exc)
            return None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = _TIMESPEC.unpack_from(payload)
                return data, sec + nsec * 1e-9
        return data, None

    def recv6(self) -> tuple[bytes, ipaddress.IPv6Address, ipaddress.IPv6Address | None,
                             int | None, float | None] | None:
        """One IPv6 datagram as (payload, source, destination, hop limit, arrival time), or None
        when nothing is pending. Never raises for network conditions (counted in `errors`)."""
        try:
            data, anc, _flags, addr = self.sock.recvmsg(65535, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._count(exc)
            return None
        hops: int | None = None
        dst: ipaddress.IPv6Address | None = None
        stamp: float | None = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET:
                if kind == SO_TIMESTAMPNS and len(payload) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    stamp = sec + nsec * 1e-9
                continue
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == IPV6_HOPLIMIT and len(payload) >= 4:
                hops = struct.unpack_from("@i", payload)[0]
            elif kind == IPV6_PKTINFO and len(payload) >= 20:
                dst = _ip6(payload[:16])
        return data, _ip6(addr[0].split("%", 1)[0]), dst, hops, stamp

    # ---- unicast send ----------------------------------------------------------------------
    def send_unicast(self, payload: bytes, peer: str, ifindex: int = 0,
                     src: str | None = None) -> str | None:
        """Send `payload` (the VRRP message) to `peer` with TTL/hop limit 255. Returns None on
        success or the errno name (counted in `errors`)."""
        anc = []
        if self.family == 4:
            if src or ifindex:
                spec = socket.inet_aton(src or "0.0.0.0")
                anc.append((socket.IPPROTO_IP, IP_PKTINFO,
                            struct.pack("@i4s4s", ifindex, spec, b"\0" * 4)))
            dest: tuple[str, int] | tuple[str, int, int, int] = (peer, 0)
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
        self.sock.close()


_ip6 = AddressCache(ipaddress.IPv6Address)
