"""UDP echo responder that names its router, for the lab's client prober.

Run inside a router namespace::

    ip netns exec NS python -m vmaclab.echo --node r1 --port 7007

Every datagram is answered with its own bytes followed by ``b"|" + node name``, so the client sees which
router answered.  The reply is sent from the address the request was sent *to* (IP_PKTINFO /
IPV6_PKTINFO), so a probe to the VIP is answered from the VIP, not from the router's primary address.
Prints ``ready`` on stdout once its sockets are bound.  Exits 0 on SIGTERM/SIGINT.  Only the standard
library is imported, so start-up takes a few tens of milliseconds.
"""
from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import struct
import sys

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_ANC_SPACE = socket.CMSG_SPACE(64)


def _open_sockets(port: int) -> list[socket.socket]:
    """Bind an IPv4 and (when the namespace has IPv6) an IPv6-only UDP socket on ``port``."""
    socks = []
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s4.bind(("0.0.0.0", port))
    socks.append(s4)
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s6.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        s6.bind(("::", port))
        socks.append(s6)
    except OSError:
        pass  # IPv6 disabled in this namespace
    return socks


def _reply_ancillary(sock: socket.socket, ancdata: list) -> list:
    """Build the ancillary data that makes the reply leave from the request's destination address."""
    for level, ctype, data in ancdata:
        if sock.family == socket.AF_INET and level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
            _ifindex, _spec, addr = struct.unpack("i4s4s", data[:12])
            return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, addr, b"\0" * 4))]
        if sock.family == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO:
            addr, _ifindex = struct.unpack("16si", data[:20])
            return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16si", addr, 0))]
    return []


def _set_realtime(priority: int) -> None:
    """SCHED_FIFO at ``priority`` (0: leave as is), so box load does not delay replies (like the
    kernel's own ICMP echo, which answers in softirq)."""
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except OSError:
            pass


def serve(node: str, port: int) -> int:
    """Answer datagrams on ``port`` until SIGTERM/SIGINT; returns the number of replies sent."""
    stop = {"flag": False}

    def _on_signal(_signum: int, _frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    socks = _open_sockets(port)
    tag = b"|" + node.encode()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    replies = 0
    while not stop["flag"]:
        try:
            readable, _, _ = select.select(socks, [], [], 0.2)
        except InterruptedError:
            continue
        for sock in readable:
            try:
                data, anc, _flags, peer = sock.recvmsg(2048, _ANC_SPACE)
                sock.sendmsg([data, tag], _reply_ancillary(sock, anc), 0, peer)
                replies += 1
            except OSError:
                continue  # e.g. the VIP vanished between receive and reply
    for sock in socks:
        sock.close()
    return replies


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m vmaclab.echo --node NAME --port PORT``."""
    ap = argparse.ArgumentParser(prog="vmaclab.echo", description=__doc__.splitlines()[0])
    ap.add_argument("--node", default=os.uname().nodename, help="name put in every reply")
    ap.add_argument("--port", type=int, default=7007, help="UDP port (both IPv4 and IPv6)")
    ap.add_argument("--rt-priority", type=int, default=5, help="SCHED_FIFO priority (0: normal)")
    args = ap.parse_args(argv)
    _set_realtime(args.rt_priority)
    serve(args.node, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
