"""A deterministic virtual LAN of VirtualRouters: virtual clock, delay, loss, partitions, crashes.

Everything runs from one event queue ordered by (time, sequence number), so a run is a pure
function of its inputs and its seed. The network delivers each SendAdvert as an Advertisement to
every other live node that runs the same VRID, is in the same partition and is not hit by loss,
`delay` seconds later. Safety invariants are checked after every batch of actions and raise
InvariantError with the tail of the trace:

* a node holds the VIPs of a VRID exactly while its router is master (never claims otherwise);
* every advert carries a priority in 0..255; 0 only from a master that is leaving (or has just
  left), any other value only from a master and equal to its effective priority.
"""
from __future__ import annotations

import heapq
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vmacd.core import timers
from vmacd.core.events import (
    AdvertReceived,
    ClaimVips,
    ReleaseVips,
    SendAdvert,
    Startup,
    StateChanged,
)
from vmacd.core.fsm import RouterParams, State, VirtualRouter
from vmacd.core.groups import SyncGroup, settle
from vmacd.core.wire import Advertisement


class InvariantError(AssertionError):
    """A safety invariant broke during the run."""


@dataclass(frozen=True)
class NodeSpec:
    """One box: its name, its address index (10.0.0.<index>) and one RouterParams per VRID."""

    name: str
    index: int
    params: dict[int, RouterParams] = field(default_factory=dict, hash=False, compare=False)
    sync_group: bool = False          # all its VRIDs form one sync group


def make_params(index: int, vrid: int, **kw) -> RouterParams:
    """RouterParams on the 10.0.0.0/24 LAN: primary 10.0.0.<index>, VIP 10.0.<vrid>.254."""
    return RouterParams(vrid=vrid, primary=ipaddress.IPv4Address(f"10.0.0.{index}"),
                        vips=(ipaddress.IPv4Address(f"10.0.{vrid}.254"),), name=f"vr{vrid}", **kw)


@dataclass
class Node:
    spec: NodeSpec
    routers: dict[int, VirtualRouter]
    alive: bool = True
    epoch: int = 0
    holding: dict[int, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    time: float
    node: str
    vrid: int
    what: str


class Sim:
    """The virtual LAN. Schedule operations with `at(t, fn)`, then `run_until(t)`."""

    def __init__(self, specs: list[NodeSpec], delay: float = 0.001, seed: int = 0,
                 jitter: float = 0.0, max_events: int = 300_000) -> None:
        self.now = 0.0
        self.events, self.max_events = 0, max_events   # a storm (adverts answering adverts) fails
        self.delay, self.jitter = delay, jitter
        self.loss = 0.0
        self.rng = random.Random(seed)
        self.partition: dict[str, int] = {}
        self.nodes = {s.name: Node(s, self._fresh(s)) for s in specs}
        self.trace: list[Trace] = []
        self.adverts: list[tuple[float, str, int, int]] = []     # (time, node, vrid, priority)
        self._q: list[tuple[float, int, str, tuple]] = []
        self._seq = 0
        self._scheduled: dict[tuple[str, int], float | None] = {}

    # -- construction, queue --------------------------------------------------------------------

    @staticmethod
    def _fresh(spec: NodeSpec) -> dict[int, VirtualRouter]:
        return {v: VirtualRouter(p) for v, p in spec.params.items()}

    def _push(self, t: float, kind: str, data: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._q, (t, self._seq, kind, data))

    def at(self, t: float, fn: Callable[[], None], label: str = "") -> None:
        """Run `fn()` at virtual time t (an operation of the schedule)."""
        self._push(t, "op", (fn, label))

    def run_until(self, t_end: float) -> None:
        while self._q and self._q[0][0] <= t_end:
            t, _, kind, data = heapq.heappop(self._q)
            self.now = t
            self.events += 1
            if self.events > self.max_events:
                self._fail(f"more than {self.max_events} events: an advert storm?")
            if kind == "op":
                data[0]()
            elif kind == "timer":
                self._on_timer(*data)
            else:
                self._on_deliver(*data)
        self.now = t_end

    # -- driving routers -------------------------------------------------------------------------

    def feed(self, name: str, vrid: int, event: object) -> None:
        """Hand one input to a live node's router now and execute the result."""
        node = self.nodes[name]
        if node.alive and vrid in node.routers:
            self._run(node, vrid, lambda r: r.handle(event, self.now))

    def feed_all(self, name: str, event: object) -> None:
        for vrid in list(self.nodes[name].routers):
            self.feed(name, vrid, event)

    def _run(self, node: Node, vrid: int, step: Callable[[VirtualRouter], list]) -> None:
        router = node.routers[vrid]
        before = router.state
        actions = step(router)
        self._execute(node, vrid, before, actions)
        if node.spec.sync_group and len(node.routers) > 1:
            group = SyncGroup(node.spec.name, tuple(str(v) for v in node.routers))
            routers = {str(v): r for v, r in node.routers.items()}
            snapshot = {v: r.state for v, r in node.routers.items()}
            for member, action in settle(group, routers, self.now):
                self._execute(node, int(member), snapshot[int(member)], [action])
                snapshot[int(member)] = node.routers[int(member)].state
        for v in node.routers:
            self._rearm(node, v)
        self._check_holding(node)

    def _rearm(self, node: Node, vrid: int) -> None:
        t = node.routers[vrid].get_timer()
        key = (node.spec.name, vrid)
        if self._scheduled.get(key) != t:
            self._scheduled[key] = t
            if t is not None:
                self._push(t, "timer", (node.spec.name, vrid, node.epoch, t))

    def _on_timer(self, name: str, vrid: int, epoch: int, t: float) -> None:
        node = self.nodes[name]
        if not node.alive or node.epoch != epoch or self._scheduled.get((name, vrid)) != t:
            return
        self._scheduled[(name, vrid)] = None
        self._run(node, vrid, lambda r: r.handle_timer(self.now))

    def _on_deliver(self, name: str, vrid: int, epoch: int, adv: Advertisement) -> None:
        node = self.nodes[name]
        if node.alive and node.epoch == epoch and vrid in node.routers:
            self._run(node, vrid, lambda r: r.handle(AdvertReceived(adv), self.now))

    # -- actions and invariants ------------------------------------------------------------------

    def _fail(self, msg: str) -> None:
        tail = "\n".join(f"  {x.time:10.5f} {x.node} vrid {x.vrid}: {x.what}" for x in self.trace[-25:])
        raise InvariantError(f"t={self.now:.5f}: {msg}\nlast trace:\n{tail}")

    def _execute(self, node: Node, vrid: int, before: State, actions: list) -> None:
        router = node.routers[vrid]
        name = node.spec.name
        for a in actions:
            if isinstance(a, SendAdvert):
                self._check_advert(node, vrid, before, a)
                self._broadcast(node, vrid, a)
            elif isinstance(a, ClaimVips):
                if router.state is not State.MASTER:
                    self._fail(f"{name} vrid {vrid} claims VIPs in state {router.state.value}")
                node.holding[vrid] = True
                self.trace.append(Trace(self.now, name, vrid, "claim"))
            elif isinstance(a, ReleaseVips):
                node.holding[vrid] = False
                self.trace.append(Trace(self.now, name, vrid, "release"))
            elif isinstance(a, StateChanged):
                self.trace.append(Trace(self.now, name, vrid, f"{a.old}->{a.new} ({a.reason})"))

    def _check_advert(self, node: Node, vrid: int, before: State, a: SendAdvert) -> None:
        r = node.routers[vrid]
        if not 0 <= a.priority <= 255:
            self._fail(f"{node.spec.name} sent priority {a.priority}")
        if a.priority == 0:
            if not (r.leaving or before is State.MASTER):
                self._fail(f"{node.spec.name} vrid {vrid} sent priority 0 while {before.value}")
        elif r.state is not State.MASTER or a.priority != r.effective_priority:
            self._fail(f"{node.spec.name} vrid {vrid} sent {a.priority} in {r.state.value}")
        self.adverts.append((self.now, node.spec.name, vrid, a.priority))

    def _check_holding(self, node: Node) -> None:
        for vrid, r in node.routers.items():
            if node.holding.get(vrid, False) != (r.state is State.MASTER):
                self._fail(f"{node.spec.name} vrid {vrid} holding={node.holding.get(vrid)} "
                           f"in state {r.state.value}")

    def _broadcast(self, src: Node, vrid: int, a: SendAdvert) -> None:
        adv = Advertisement(a.version, a.vrid, a.priority, a.interval_cs, a.addresses,
                            src=src.routers[vrid].params.primary)
        group = self.partition.get(src.spec.name, 0)
        for node in self.nodes.values():
            if node is src or not node.alive or vrid not in node.routers:
                continue
            if self.partition.get(node.spec.name, 0) != group:
                continue
            if self.loss and self.rng.random() < self.loss:
                continue
            d = self.delay + (self.rng.random() * self.jitter if self.jitter else 0.0)
            self._push(self.now + d, "deliver", (node.spec.name, vrid, node.epoch, adv))

    # -- faults ----------------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        """Power loss: the node stops at once; what it held vanishes with it."""
        node = self.nodes[name]
        node.alive, node.epoch = False, node.epoch + 1
        node.holding = {}
        self.trace.append(Trace(self.now, name, 0, "CRASH"))

    def restart(self, name: str) -> None:
        """Boot a crashed node again: fresh routers, Startup."""
        node = self.nodes[name]
        if node.alive:
            return
        node.alive, node.epoch, node.routers = True, node.epoch + 1, self._fresh(node.spec)
        self._scheduled.update({(name, v): None for v in node.routers})
        self.trace.append(Trace(self.now, name, 0, "RESTART"))
        self.feed_all(name, Startup())

    def start_all(self) -> None:
        for name in self.nodes:
            self.feed_all(name, Startup())

    # -- observation -------------------------------------------------------------------------------

    def masters(self, vrid: int) -> list[str]:
        return [n.spec.name for n in self.nodes.values()
                if n.alive and vrid in n.routers and n.routers[vrid].state is State.MASTER]

    def first_claim_after(self, vrid: int, t: float, exclude: str = "") -> Trace | None:
        return next((x for x in self.trace if x.vrid == vrid and x.time >= t and x.what == "claim"
                     and x.node != exclude), None)

    def mdi(self, name: str, vrid: int) -> float:
        r = self.nodes[name].routers[vrid]
        return timers.seconds(timers.master_down_interval_cs(
            r.effective_priority, r.master_adver_interval_cs, r.params.version))


def with_params(spec: NodeSpec, **kw) -> NodeSpec:
    """The same node with some RouterParams fields changed on every VRID."""
    return replace(spec, params={v: replace(p, **kw) for v, p in spec.params.items()})
