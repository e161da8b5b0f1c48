"""Inputs to and actions from a VirtualRouter (vmacd/core/fsm.py). All frozen, all comparable.

Inputs are what the daemon tells the state machine; `VirtualRouter.handle(event, now)` takes one
and returns a list of actions. Timer expiry is not an input object: the daemon calls
`VirtualRouter.handle_timer(now)` when `get_timer()` is due (aioquic style).

Actions are requests. The daemon executes them **in the order given**; the core never touches
the box. Each action's docstring says what the daemon does with it.
"""
from __future__ import annotations

from dataclasses import dataclass

from vmacd.core.params import RouterParams
from vmacd.core.proto import Advertisement, IPAddress

# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Startup:
    """RFC 9568 §6.4.1 Startup: the instance may run (from init, or again from stopped)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """RFC 9568 §6.4.2/6.4.3 Shutdown: stop the instance (SIGTERM, removal on reload)."""

    reason: str = "shutdown"


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """An advertisement the codec accepted (wire.decode), routed here by (ifindex, family, VRID)."""

    adv: Advertisement


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The instance's own interface went up or down (netlink). Down sends the instance to fault."""

    up: bool


@dataclass(frozen=True, slots=True)
class PrimaryChanged:
    """The interface's own address changed (netlink): the IPv4 primary / IPv6 link-local the
    instance advertises from and breaks priority ties with. None: it has none left, so the
    instance cannot take part (fault) until one appears."""

    address: IPAddress | None


@dataclass(frozen=True, slots=True)
class TrackChanged:
    """A tracked object changed (interface, script, file, resource; see groups.py).

    `weight` < 0 is added to the priority while the object is down, `weight` > 0 while it is up,
    `weight` == 0 sends the instance to fault while the object is down. Priorities clamp to 1..254
    (the owner keeps 255; only a weight-0 fault moves it).
    """

    name: str
    up: bool
    weight: int = 0


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Operator drain (`vmacctl maintenance NAME on|off`): on = give up mastership, never claim.

    Unless `force`, a drain that would leave the VIP without a master is refused: a backup that
    hears no master refuses at once; a master that hears no successor within the handover bound
    stays master and ends the drain (HandoverDone(ok=False))."""

    on: bool
    force: bool = False


@dataclass(frozen=True, slots=True)
class TrackRemoved:
    """A tracked object is no longer configured (reload): forget its state."""

    name: str


@dataclass(frozen=True, slots=True)
class ResourceFailed:
    """A resource failed (its start, or `monitor_fall` monitors in a row). A master hands over
    make-before-break; the router stays out of mastership for `hold` seconds (0: until
    ClearFailures). `op` is "start" | "monitor" | "stop"."""

    resource: str
    op: str
    hold: float = 0.0


@dataclass(frozen=True, slots=True)
class ClearFailures:
    """`vmacctl clear`: forget resource failures; the router may become master again."""


@dataclass(frozen=True, slots=True)
class ResourcesStopped:
    """The resources asked to stop before a leave (RouterParams.stop_before_leave) are stopped:
    the master may now send priority 0."""


@dataclass(frozen=True, slots=True)
class ParamsChanged:
    """A reload changed this router's parameters in place (same VRID, family and version)."""

    params: RouterParams


@dataclass(frozen=True, slots=True)
class SyncGroupChanged:
    """A directive from the instance's sync group (groups.SyncGroup.directives).

    `fault`: another member is in fault, so this one must be too.
    `hold`: another member was beaten, so this one must not be master by preemption: a master
    resigns (priority 0, release) and a backup behaves as if preempt were off (it still takes
    over when the master goes silent, so a VR is never left without a master).
    """

    fault: bool
    hold: bool
    reason: str = ""


# ----------------------------------------------------------------------------------------------
# Actions
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Encode (wire.encode) and send one advertisement now, from the vMAC, to the VRRP group
    (or the unicast peers). Priority 0 means "this master is leaving" (RFC 9568 §5.2.4)."""

    vrid: int
    version: int
    family: int
    priority: int            # 0..255
    interval_cs: int         # our Advertisement_Interval, centiseconds
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class ClaimVips:
    """Bring the vMAC macvlan (00:00:5e:00:0{1|2}:VRID) up and add the VIPs (IPv6: join the
    solicited-node groups, RFC 9568 §6.4.2). Always precedes Announce."""

    vrid: int
    family: int
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class ReleaseVips:
    """Remove the VIPs and take the vMAC macvlan down (leave the solicited-node groups)."""

    vrid: int
    family: int
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class Announce:
    """Send one gratuitous ARP (IPv4) / unsolicited NA R=1 S=0 O=1 (IPv6) per address from the
    vMAC, `repeat` times (garp_repeat), spaced as the daemon likes (RFC 9568 §6.4.1/§6.4.2)."""

    vrid: int
    family: int
    addresses: tuple[IPAddress, ...]
    repeat: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A transition happened at `time` (the `now` passed in). For logs, metrics, history."""

    old: str
    new: str
    reason: str
    time: float


@dataclass(frozen=True, slots=True)
class RunResources:
    """Run the instance's resources: "start" in order on becoming master, "stop" in reverse order
    after leaving. A start failure should come back as TrackChanged("resource:NAME", False, 0)."""

    what: str  # "start" | "stop"


@dataclass(frozen=True, slots=True)
class Notify:
    """Run the notify script: TYPE=INSTANCE NAME STATE PRIORITY (keepalived arguments)."""

    state: str
    priority: int


@dataclass(frozen=True, slots=True)
class Drop:
    """The advert was refused by the state machine; count vmacd_packets_dropped_total{reason}.

    `reason` is one of wire.DROP_REASONS. Nothing else changed: state, timers, learned interval.
    """

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Log:
    """A log line, already rate-limited per `kind` by the state machine (RFC 9568 §7.1, §8.3.2,
    §2.5). kinds: drop, interval-mismatch, address-mismatch, owner-conflict, equal-priority,
    flapping, preempt. `suppressed` = lines of this kind swallowed since the previous one."""

    level: str   # "debug" | "info" | "warning" | "error"
    kind: str
    message: str
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class MasterSeen:
    """A backup learned (or changed) which router is master: vmacd_master_seen_info{master}."""

    src: IPAddress | None
    priority: int
    interval_cs: int


@dataclass(frozen=True, slots=True)
class DualMaster:
    """Another master kept advertising for longer than one of its advertisement intervals while
    this router stayed master (an ordinary preemption is not one): vmacd_dual_master_total."""

    src: IPAddress | None
    priority: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """A Shutdown has finished (VIPs released, handover done): the daemon may exit."""


@dataclass(frozen=True, slots=True)
class HandoverDone:
    """A leave that an operator asked for (maintenance) ended: `ok` when a successor took over,
    False when none came within the handover bound and this router stayed master."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PrepareTakeover:
    """A backup expects to become master soon — it heard the master's priority 0 (a planned
    handover), or it will preempt a lower-priority master (§6.4.2-14): it may start its resources
    now, before its timer runs out, so it serves from its first frame (make-before-break for the
    service). `src` is the master it replaces."""

    src: IPAddress | None


Action = (SendAdvert | ClaimVips | ReleaseVips | Announce | StateChanged | RunResources | Notify
          | Drop | Log | MasterSeen | DualMaster | Stopped | HandoverDone | PrepareTakeover)
