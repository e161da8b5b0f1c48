"""The receive side: one raw socket per (interface, family, protocol), routed by VRID to runners.

    socket readable -> Receiver port reader -> routes[vrid].receive4/receive6 -> ...

The IPv4 path reads whole datagrams until the socket is empty, takes the VRID from the VRRP
header (after the AH header for protocol 51) and hands the bytes to the runner's intake
(vmacd/intake.py), which decodes them (or recognises a repeat). Packets for a VRID nobody runs
on that interface are counted as `vrid` drops with an empty instance label.

Batches. A socket shared by several instances that are all backups (or not running) is read in
batches (a socket of one instance is read at once: there is nothing to batch it with): the first
datagram that arrives starts a hold-off (at most HOLDOFF_MAX, a quarter of the shortest
advertisement interval), then everything queued is read at once. A backup acts on its adverts
only through its Master_Down_Timer, and each advert is timed from the kernel's arrival stamp, not
from when it was read, so the batch changes no deadline; it only spares the daemon a wake-up per
advert (255 VRIDs at 100 ms are 2,550 a second). A socket with a master on it is read the moment
it is readable: a higher priority must be obeyed, and a frame replaying our own adverts
re-asserted, at once.

`drain()` reads every socket until it is empty: a runner calls it before acting on an expired
Master_Down timer, so a daemon that was stalled (or holding a batch) sees the adverts queued
meanwhile first.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from vmacd.core.proto import AH_LEN, IPPROTO_AH, VRRP_PROTO, IPAddress
from vmacd.linux.sockets import RECV_MAX, VrrpSocket
from vmacd.loop import Loop

if TYPE_CHECKING:
    from vmacd.control.metrics import Metrics

log = logging.getLogger("vmacd.receive")

BURST = 512              # datagrams read per readiness callback before the loop looks around
HOLDOFF_MAX = 0.02       # seconds a backup-only socket lets adverts gather before a batch read


class Receiving(Protocol):
    """What an instance offers the receiver (its Intake)."""

    def receive4(self, data: bytes, ihl: int, now: float) -> None: ...

    def receive6(self, data: bytes, src: IPAddress, dst: IPAddress | None,
                 hops: int | None, now: float) -> None: ...

    @property
    def holdoff(self) -> float:
        """How long its adverts may wait to be read in a batch (0: read them at once)."""
        ...


class _Port:
    """One socket and its routing table."""

    __slots__ = ("read", "readable", "routes", "sock")

    def __init__(self, sock: VrrpSocket) -> None:
        self.sock = sock
        self.routes: dict[int, Receiving] = {}
        self.read: Callable[[bool], None] = lambda stamped: None
        self.readable: Callable[[], None] = lambda: None


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
            port.readable = lambda: self._readable(port)
            self.loop.add_reader(port.sock.fileno(), port.readable)
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
                port.routes = {}
                del self._ports[key]

    def drain(self) -> None:
        """Read every socket until it is empty (see the module docstring)."""
        for port in list(self._ports.values()):
            port.read(True)

    # ------------------------------------------------------------------ batches
    def _readable(self, port: _Port) -> None:
        """The socket has data: read it now, or hold it for a batch (module docstring)."""
        if len(port.routes) < 2:        # nothing to batch with: a hold would only add a wake-up
            port.read(False)
            return
        hold = HOLDOFF_MAX
        for runner in port.routes.values():
            h = runner.holdoff
            if h < hold:
                hold = h
                if h <= 0.0:
                    break
        if hold <= 0.0:
            port.read(False)
            return
        self.loop.remove_reader(port.sock.fileno())     # until the batch is read
        self.loop.call_later(hold, self._release, port)

    def _release(self, port: _Port) -> None:
        if not port.routes:                  # closed meanwhile
            return
        self.loop.add_reader(port.sock.fileno(), port.readable)
        port.read(True)

    def close(self) -> None:
        for port in self._ports.values():
            self.loop.remove_reader(port.sock.fileno())
            port.sock.close()
        self._ports.clear()

    # ------------------------------------------------------------------ readers
    def _reader(self, port: _Port, ifname: str) -> Callable[[bool], None]:
        """`read(stamped)`: everything queued, each datagram timed from its kernel arrival stamp
        (`stamped`: a batch, or a drain) or from now (read the moment it came)."""
        sock = port.sock
        loop_time = self.loop.time
        if sock.family == 6:
            at = 1 if sock.proto == VRRP_PROTO else AH_LEN + 1

            def read6(stamped: bool) -> None:
                recv6 = sock.recv6
                now = loop_time()
                offset = time.time() - now
                for _ in range(BURST):
                    got = recv6()
                    if got is None:
                        return
                    data, src, dst, hops, stamp = got
                    runner = port.routes.get(data[at]) if len(data) > at else None
                    if runner is None:
                        self._unknown(data[at] if len(data) > at else None, ifname)
                    else:
                        runner.receive6(data, src, dst, hops,
                                        _arrived(stamp, offset, now) if stamped else now)
            return read6

        recv = sock.sock.recv
        recv_stamped = sock.recv4_stamped

        def read4(stamped: bool) -> None:
            routes = port.routes
            now = loop_time()
            offset = time.time() - now
            when = now
            for _ in range(BURST):
                if stamped:
                    got = recv_stamped()
                    if got is None:
                        return
                    data, stamp = got
                    when = _arrived(stamp, offset, now)
                else:
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
                    runner.receive4(data, ihl, when)
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


def _arrived(stamp: float | None, offset: float, now: float) -> float:
    """A kernel arrival stamp (CLOCK_REALTIME) in loop time. `offset` is realtime minus loop time
    at this read; a stamp that cannot be right (none, in the future, or more than a second back:
    the wall clock was stepped) counts as now."""
    if stamp is None:
        return now
    t = stamp - offset
    return t if now - 1.0 <= t <= now else now
