"""A small rtnetlink client: the few link and address messages vmacd needs, on the loop's thread.

Why not pyroute2: it costs the daemon ~11-22 MB of RSS (of a 30 MB budget for daemon and
guardian), and its synchronous API runs an asyncio loop of its own, so every call had to hop to a
worker thread — on the takeover path, between the Master_Down timer and the first advert. The
kernel does the work of a request inside `sendmsg()` (rtnetlink runs in the sender's context),
so a batch such as "vMAC up + add the VIPs" costs one system call here, and its acks are read
right after.

Messages (linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h): nlmsghdr + ifinfomsg/ifaddrmsg +
rtattr TLVs, 4-byte aligned, host byte order. `Request` builds one; `Rtnl.call()` sends a batch
in one `sendmsg()` and returns, per request, its reply messages or a `NetlinkError`.
"""
from __future__ import annotations

import collections
import errno
import os
import socket
import struct
from collections.abc import Iterator, Sequence

# The guardian imports this module and keeps its imports small: the records are
# collections.namedtuple at run time (`typing` alone is ~0.9 MB of RSS), typed for mypy below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

# message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
# flags
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 5, 18, 20
IFLA_AF_SPEC, IFLA_CARRIER, IFLA_EXT_MASK = 26, 33, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE = 1
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4}
RTEXT_FILTER_SKIP_STATS = 1 << 3     # links without their ~1 KB of counters
# address attributes and flags
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO = 1, 2, 8, 11
IFA_F_NODAD, IFA_F_NOPREFIXROUTE = 0x02, 0x200
IFF_UP = 0x1
# multicast groups
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100

_HDR = struct.Struct("=IHHII")        # nlmsghdr
_IFI = struct.Struct("=BxHiII")       # ifinfomsg
_IFA = struct.Struct("=BBBBI")        # ifaddrmsg
_RTA = struct.Struct("=HH")
_ERR = struct.Struct("=i")


class NetlinkError(OSError):
    """The kernel refused a request; `errno` is its error code, the message says what was asked."""


if TYPE_CHECKING:
    class _LinkRecord(NamedTuple):
        index: int  # type: ignore[assignment]  # shadows tuple.index(), never called (see Link)
        name: str
        flags: int
        carrier: bool | None
        mac: str
        alias: str
        kind: str
        parent: int              # IFLA_LINK (0: none)

    class Addr(NamedTuple):
        """One RTM_NEWADDR message."""

        index: int  # type: ignore[assignment]  # shadows tuple.index(), never called (see Link)
        family: int              # 4 | 6
        prefixlen: int
        address: str
        proto: int               # IFA_PROTO (0: not set)
        flags: int               # IFA_FLAGS (or the 8-bit ifa_flags)

    class Request(NamedTuple):
        """One request: message type, flags (NLM_F_REQUEST is added) and body; `what` for
        errors."""

        type: int
        flags: int
        body: bytes
        what: str
else:
    _LinkRecord = collections.namedtuple(
        "_LinkRecord", "index name flags carrier mac alias kind parent")
    Addr = collections.namedtuple("Addr", "index family prefixlen address proto flags")
    Request = collections.namedtuple("Request", "type flags body what")


class Link(_LinkRecord):
    """One RTM_NEWLINK message, the fields vmacd reads. A named tuple, not a dataclass (see the
    imports); the records are read by field name only, so `index` (the kernel's ifindex) may
    shadow the tuple method of that name."""

    __slots__ = ()

    @property
    def up(self) -> bool:
        """Administratively up and carrier: what "the link is up" means everywhere in vmacd."""
        return bool(self.flags & IFF_UP) and self.carrier is True


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One rtattr, padded."""
    raw = _RTA.pack(_RTA.size + len(data), kind) + data
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind, b"".join(attrs))


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """rtattr TLVs from `offset` to the end -> {type: payload} (nested flag stripped)."""
    out: dict[int, bytes] = {}
    end = len(data)
    while offset + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size or offset + length > end:
            break
        out[kind & 0x3FFF] = bytes(data[offset + _RTA.size:offset + length])
        offset += _align(length)
    return out


def _cstr(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") if raw else ""


def _mac(raw: bytes | None) -> str:
    return ":".join(f"{b:02x}" for b in raw) if raw else ""


def parse_link(body: memoryview) -> Link:
    _fam, _type, index, flags, _change = _IFI.unpack_from(body)
    a = parse_attrs(body, _IFI.size)
    info = parse_attrs(a.get(IFLA_LINKINFO, b""))
    carrier = a.get(IFLA_CARRIER)
    parent = a.get(IFLA_LINK)
    return Link(index, _cstr(a.get(IFLA_IFNAME)), flags,
                None if carrier is None else carrier[0] == 1, _mac(a.get(IFLA_ADDRESS)),
                _cstr(a.get(IFLA_IFALIAS)), _cstr(info.get(IFLA_INFO_KIND)),
                struct.unpack("=i", parent)[0] if parent else 0)


def parse_addr(body: memoryview) -> Addr:
    fam, plen, flags8, _scope, index = _IFA.unpack_from(body)
    a = parse_attrs(body, _IFA.size)
    raw = a.get(IFA_LOCAL) if fam == socket.AF_INET and IFA_LOCAL in a else a.get(IFA_ADDRESS)
    address = socket.inet_ntop(fam, raw) if raw else ""
    proto = a.get(IFA_PROTO)
    flags = struct.unpack("=I", a[IFA_FLAGS])[0] if IFA_FLAGS in a else flags8
    return Addr(index, 4 if fam == socket.AF_INET else 6, plen, address,
                proto[0] if proto else 0, flags)


# ---- request builders -------------------------------------------------------------------------
def link_by_name(name: str) -> Request:
    return Request(RTM_GETLINK, 0, _IFI.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
                   + attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)),
                   f"looking up interface {name}")


def link_by_index(index: int) -> Request:
    return Request(RTM_GETLINK, 0, _IFI.pack(0, 0, index, 0, 0)
                   + attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)),
                   f"looking up ifindex {index}")


def link_dump() -> Request:
    return Request(RTM_GETLINK, NLM_F_DUMP, _IFI.pack(0, 0, 0, 0, 0)
                   + attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)), "listing links")


def set_link_up(index: int, up: bool) -> Request:
    return Request(RTM_NEWLINK, NLM_F_ACK, _IFI.pack(0, 0, index, IFF_UP if up else 0, IFF_UP),
                   f"setting ifindex {index} {'up' if up else 'down'}")


def delete_link(index: int) -> Request:
    return Request(RTM_DELLINK, NLM_F_ACK, _IFI.pack(0, 0, index, 0, 0), f"deleting ifindex {index}")


def create_macvlan(name: str, parent: int, mac: bytes, mode: str) -> Request:
    """A DOWN macvlan `name` on `parent` with MAC `mac` (created exclusively)."""
    info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"macvlan"),
                  nested(IFLA_INFO_DATA, attr(IFLA_MACVLAN_MODE,
                                              struct.pack("=I", MACVLAN_MODES[mode]))))
    body = (_IFI.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_LINK, struct.pack("=I", parent)) + attr(IFLA_ADDRESS, mac) + info)
    return Request(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body,
                   f"creating macvlan {name} on ifindex {parent}")


def mark_link(name: str, alias: str) -> Request:
    """Set the alias and IPv6 addrgenmode none on an existing link, found by name."""
    af = nested(IFLA_AF_SPEC, nested(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                                           bytes((IN6_ADDR_GEN_MODE_NONE,)))))
    body = (_IFI.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_IFALIAS, alias.encode()) + af)
    return Request(RTM_NEWLINK, NLM_F_ACK, body, f"marking {name} as vmacd's")


def address(add: bool, index: int, ip: str, prefixlen: int, flags: int = 0,
            proto: int = 0) -> Request:
    """RTM_NEWADDR (add, not replacing) / RTM_DELADDR of `ip`/`prefixlen` on `index`."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    packed = socket.inet_pton(fam, ip)
    body = _IFA.pack(fam, prefixlen, flags & 0xFF, 0, index) + attr(IFA_ADDRESS, packed)
    if fam == socket.AF_INET:
        body += attr(IFA_LOCAL, packed)
    if add:
        body += attr(IFA_FLAGS, struct.pack("=I", flags))
        if proto:
            body += attr(IFA_PROTO, bytes((proto,)))
        return Request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body,
                       f"adding {ip}/{prefixlen} on ifindex {index}")
    return Request(RTM_DELADDR, NLM_F_ACK, body, f"removing {ip}/{prefixlen} from ifindex {index}")


def address_dump(family: int = 0, index: int = 0) -> Request:
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family, 0)
    return Request(RTM_GETADDR, NLM_F_DUMP, _IFA.pack(fam, 0, 0, 0, index), "listing addresses")


# ---- the socket ---------------------------------------------------------------------------------
class Rtnl:
    """A NETLINK_ROUTE socket: blocking requests with a timeout, or a non-blocking monitor of
    `groups` (read with `messages()`)."""

    def __init__(self, groups: int = 0, timeout: float = 5.0, rcvbuf: int = 1 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            self.sock.bind((0, groups))
        except OSError:
            self.sock.close()
            raise
        if groups:
            self.sock.setblocking(False)
        else:
            self.sock.settimeout(timeout)
        self._seq = 0
        self.timeout = timeout

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def call(self, requests: Sequence[Request]) -> list[list[tuple[int, memoryview]] | NetlinkError]:
        """Send every request in one sendmsg(); return, per request, its reply messages as
        (message type, body after nlmsghdr) pairs, or its NetlinkError."""
        if not requests:
            return []
        base = self._seq + 1
        out: list[bytes] = []
        for i, req in enumerate(requests):
            flags = NLM_F_REQUEST | req.flags
            out.append(_HDR.pack(_HDR.size + len(req.body), req.type, flags, base + i, 0) + req.body)
        self._seq += len(requests)
        self.sock.send(b"".join(out))
        results: dict[int, list[tuple[int, memoryview]]] = {base + i: [] for i in range(len(requests))}
        errors: dict[int, NetlinkError] = {}
        pending = set(results)
        while pending:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                raise NetlinkError(errno.ETIMEDOUT, f"netlink did not answer within "
                                                    f"{self.timeout:g} s") from None
            for mtype, flags, seq, body in _split(data):
                if seq not in pending:
                    continue
                req = requests[seq - base]
                if mtype == NLMSG_ERROR:
                    code = -_ERR.unpack_from(body)[0]
                    if code:
                        errors[seq] = NetlinkError(code, f"{req.what}: {os.strerror(code)}")
                    pending.discard(seq)
                elif mtype == NLMSG_DONE:
                    pending.discard(seq)
                else:
                    results[seq].append((mtype, body))
                    if not flags & NLM_F_MULTI and not req.flags & NLM_F_ACK:
                        pending.discard(seq)
        return [errors.get(seq, results[seq]) for seq in range(base, base + len(requests))]

    def one(self, req: Request) -> list[tuple[int, memoryview]]:
        """A single request; NetlinkError raised."""
        (result,) = self.call([req])
        if isinstance(result, NetlinkError):
            raise result
        return result

    def messages(self) -> Iterator[tuple[int, memoryview]]:
        """Monitor mode: every pending notification as (type, body); raises OSError(ENOBUFS)
        after the messages read so far when the kernel dropped some (an overrun)."""
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            for mtype, _flags, _seq, body in _split(data):
                yield mtype, body


def _split(data: bytes) -> Iterator[tuple[int, int, int, memoryview]]:
    view = memoryview(data)
    offset = 0
    while offset + _HDR.size <= len(data):
        length, mtype, flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size or offset + length > len(data):
            return
        yield mtype, flags, seq, view[offset + _HDR.size:offset + length]
        offset += _align(length)
