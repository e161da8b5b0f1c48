"""The receive side: one raw socket per (interface, family, protocol), routed by VRID to runners.

    socket readable -> Receiver._read4/_read6 -> routes[vrid].receive4/receive6 -> ...

The IPv4 path reads whole datagrams with `recv()` (no ancillary data) until the socket is empty,
takes the VRID from the VRRP header (after the AH header for protocol 51) and hands the bytes to
the runner's intake (vmacd/intake.py), which decodes them (or recognises a repeat). Packets for a
VRID nobody runs on that interface are counted as `vrid` drops with an empty instance label.

`drain()` reads every socket until it is empty: a runner calls it before acting on an expired
Master_Down timer, so a daemon that was stalled sees the adverts queued meanwhile first.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from vmacd.core.proto import AH_LEN, IPPROTO_AH, VRRP_PROTO, IPAddress
from vmacd.linux.sockets import VrrpSocket
from vmacd.loop import Loop

if TYPE_CHECKING:
    from vmacd.control.metrics import Metrics

log = logging.getLogger("vmacd.receive")

BURST = 512              # datagrams read per readiness callback before the loop looks around
RECV_MAX = 8192          # bytes: the largest VRRP packet (255 IPv6 addresses + auth) fits


class Receiving(Protocol):
    """What an instance offers the receiver (its Intake)."""

    def receive4(self, data: bytes, ihl: int) -> None: ...

    def receive6(self, data: bytes, src: IPAddress, dst: IPAddress | None,
                 hops: int | None) -> None: ...


class _Port:
    """One socket and its routing table."""

    __slots__ = ("read", "routes", "sock")

    def __init__(self, sock: VrrpSocket) -> None:
        self.sock = sock
        self.routes: dict[int, Receiving] = {}
        self.read: Callable[[], None] = lambda: None


class Receiver:
    """The daemon's receive sockets (see the module docstring)."""

    def __init__(self, loop: Loop, metrics: Metrics) -> None:
        self.loop = loop
        self.metrics = metrics
        self._ports: dict[tuple[int, int, int], _Port] = {}
        self._drop_log_at = 0.0

    def port(self, ifname: str, ifindex: int, family: int, proto: int) -> VrrpSocket:
        """The socket for an interface, family and protocol (opened and watched on first use)."""
        key = (ifindex, family, proto)
        port = self._ports.get(key)
        if port is None:
            port = self._ports[key] = _Port(VrrpSocket(family, ifname, ifindex, proto))
            port.read = self._reader(port, ifname)
            self.loop.add_reader(port.sock.fileno(), port.read)
        return port.sock

    def route(self, runner: Receiving, vrid: int, ifname: str, ifindex: int, family: int,
              proto: int, multicast: bool) -> VrrpSocket:
        """Deliver `vrid`'s packets arriving on `ifindex` to `runner`; returns the socket."""
        sock = self.port(ifname, ifindex, family, proto)
        self._ports[(ifindex, family, proto)].routes[vrid] = runner
        if multicast:
            sock.join()
        return sock

    def unroute(self, runner: Receiving) -> None:
        """Forget `runner` everywhere; close sockets nobody is routed to any more."""
        for key, port in list(self._ports.items()):
            port.routes = {v: r for v, r in port.routes.items() if r is not runner}
            if not port.routes:
                self.loop.remove_reader(port.sock.fileno())
                port.sock.close()
                del self._ports[key]

    def drain(self) -> None:
        """Read every socket until it is empty (see the module docstring)."""
        for port in list(self._ports.values()):
            port.read()

    def close(self) -> None:
        for port in self._ports.values():
            self.loop.remove_reader(port.sock.fileno())
            port.sock.close()
        self._ports.clear()

    # ------------------------------------------------------------------ readers
    def _reader(self, port: _Port, ifname: str) -> Callable[[], None]:
        sock = port.sock
        if sock.family == 6:
            def read6() -> None:
                recv6 = sock.recv6
                for _ in range(BURST):
                    got = recv6()
                    if got is None:
                        return
                    data = got[0]
                    at = 1 if sock.proto == VRRP_PROTO else AH_LEN + 1
                    runner = port.routes.get(data[at]) if len(data) > at else None
                    if runner is None:
                        self._unknown(data[at] if len(data) > at else None, ifname)
                    else:
                        runner.receive6(*got)
            return read6

        recv = sock.sock.recv

        def read4() -> None:
            routes = port.routes
            for _ in range(BURST):
                try:
                    data = recv(RECV_MAX)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    sock._count(exc)
                    return
                if len(data) < 20:
                    self._unknown(None, ifname)
                    continue
                ihl = (data[0] & 0x0F) << 2
                at = ihl + 1 if data[9] != IPPROTO_AH else ihl + AH_LEN + 1
                runner = routes.get(data[at]) if len(data) > at else None
                if runner is None:
                    self._unknown(data[at] if len(data) > at else None, ifname)
                else:
                    runner.receive4(data, ihl)
        return read4

    def _unknown(self, vrid: int | None, ifname: str) -> None:
        reason = "vrid" if vrid is not None else "length"
        self.metrics.dropped_unknown(reason, vrid, ifname)
        now = self.loop.time()
        if now - self._drop_log_at >= 1.0:
            self._drop_log_at = now
            what = f"VRID {vrid} is not configured on {ifname}" if vrid is not None \
                else f"a truncated packet on {ifname}"
            log.info("dropped advertisement (%s): %s", reason, what, extra={"reason": reason})
