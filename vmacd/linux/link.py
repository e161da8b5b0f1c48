"""AF_PACKET sender for complete Ethernet frames: adverts, gratuitous ARPs, unsolicited NAs.

Frames are built by `vmacd.core.l2` / `vmacd.core.wire` (build apart from send), so the source
MAC (the vMAC, RFC 9568 7.2-3) and the source IP (the parent's primary IPv4 or own link-local,
7.2-4/-5) are exactly what the codec put there. The socket is bound to one interface: the vMAC
macvlan (vmac = true) or the parent (vmac = false). It uses protocol 0, so it never receives.

Sending never raises through the event loop: `send()` returns None or the errno name
("ENETDOWN" on a down vMAC, "EAGAIN" on a full queue, "ENXIO"/"ENODEV" if the device went away),
and `errors` counts them for the metrics.
"""
from __future__ import annotations

import errno
import socket

ETH_MIN = 14


class PacketSender:
    """Non-blocking AF_PACKET/SOCK_RAW socket bound to `ifindex`."""

    def __init__(self, ifindex: int) -> None:
        self.ifindex = ifindex
        try:
            self.ifname = socket.if_indextoname(ifindex)
        except OSError:
            raise ValueError(f"no interface with index {ifindex}") from None
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PermissionError("AF_PACKET sockets need root or CAP_NET_RAW") from None
        self.sock.setblocking(False)
        self.sock.bind((self.ifname, 0))
        self.sent = 0
        self.errors: dict[str, int] = {}

    def fileno(self) -> int:
        """The socket's fd."""
        return self.sock.fileno()

    def send(self, frame: bytes) -> str | None:
        """Send one full Ethernet frame (dst MAC, src MAC, ethertype, payload).

        Returns None when the kernel took it, else the errno name (also counted in `errors`).
        """
        if len(frame) < ETH_MIN:
            return self._count("EINVAL")
        try:
            self.sock.send(frame)
        except OSError as exc:
            return self._count(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        self.sent += 1
        return None

    def _count(self, name: str) -> str:
        self.errors[name] = self.errors.get(name, 0) + 1
        return name

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
