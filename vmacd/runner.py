"""One configured VRRP instance at run time: the pure VirtualRouter wired to the kernel.

A `Runner` is built whole, in one step, from what the daemon prepared (its parent interface, the
address it advertises from, its vMAC device, its receive socket). It is the only way into its
router, and every input ends the same way:

    intake (packet) ────────────┐
    on_timer (its deadline) ────┼─> router.handle(...) -> execute(actions) -> links / sender / procs
    handle (link, track, group, ┘                         (then: re-arm the one timer handle)
      maintenance, reload)

The runner owns the router, the resources (`ResourceSet`) and the timer handle, and executes the
router's actions. Its parts: `Intake` (vmacd/intake.py) takes the packets the receiver routes to
the instance: decoding, with a one-entry cache (a master repeats the same bytes every interval,
and `VirtualRouter.repeat()` stands for their full handling), and the replay guard;
`InstanceSender` (vmacd/sending.py) sends what the router asks for: advertisements, gratuitous
ARPs / NAs; vmacd/status.py shows it to the control plane. It reports state changes to its
`RunnerDeps.state_changed` (sync groups, systemd status).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Protocol

from vmacd.config import model
from vmacd.core import auth as core_auth
from vmacd.core import timers
from vmacd.core.events import (
    Action,
    Announce,
    ClaimVips,
    ClearFailures,
    Drop,
    DualMaster,
    HandoverDone,
    Log,
    Maintenance,
    MasterSeen,
    Notify,
    ParamsChanged,
    PrepareTakeover,
    PrimaryChanged,
    ReleaseVips,
    ResourceFailed,
    ResourcesStopped,
    RunResources,
    SendAdvert,
    Shutdown,
    Startup,
    StateChanged,
    Stopped,
)
from vmacd.core.fsm import State, VirtualRouter
from vmacd.core.groups import Directive, MemberView
from vmacd.core.params import RouterParams
from vmacd.core.peers import PeerTable
from vmacd.core.proto import IPAddress
from vmacd.intake import Intake
from vmacd.linux.link import PacketSender
from vmacd.linux.links import Vmac
from vmacd.linux.procs import Result
from vmacd.linux.sockets import VrrpSocket
from vmacd.loop import Deferred, Timer
from vmacd.resources import ResourceSet
from vmacd.sending import InstanceSender

if TYPE_CHECKING:
    from vmacd.control.commands import JsonObject
    from vmacd.control.metrics import Metrics
    from vmacd.linux.guardian import Guardian, GuardSpec
    from vmacd.linux.links import Links
    from vmacd.linux.nft import AcceptModeFilter, OwnerFilter
    from vmacd.linux.procs import Processes
    from vmacd.loop import Loop

log = logging.getLogger("vmacd.instance")

NOTIFY_TIMEOUT = 10.0            # seconds a notify script may run
ERROR_LOG_EVERY = 10.0           # seconds between two log lines of one failing kind of action
SEND_SLACK_MAX = 0.001           # seconds a master's advert may leave early to share a wake-up
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
               "error": logging.ERROR}


class RunnerDeps(Protocol):
    """What the daemon lends every runner (read-only: a runner never replaces them)."""

    @property
    def loop(self) -> Loop: ...

    @property
    def links(self) -> Links: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def procs(self) -> Processes: ...

    @property
    def guardian(self) -> Guardian | None: ...

    @property
    def accept_filter(self) -> AcceptModeFilter: ...

    @property
    def owner_filter(self) -> OwnerFilter: ...

    @property
    def notify_script(self) -> str | None: ...

    def drain(self) -> None: ...                       # read every queued advertisement now

    def state_changed(self, runner: Runner) -> None: ...


def auth_spec(auth: model.Auth | None) -> core_auth.AuthSpec:
    """The codec's view of an [auth.NAME] table."""
    if auth is None or auth.type == "none":
        return core_auth.NO_AUTH
    return core_auth.AuthSpec(type=auth.type, key=auth.key or b"")


def router_params(c: model.Instance, primary: IPAddress) -> RouterParams:
    return RouterParams(
        vrid=c.vrid, primary=primary, vips=tuple(v.ip for v in c.virtual_ips), version=c.version,
        priority=c.priority, interval_cs=c.advert_interval_cs, preempt=c.preempt,
        preempt_delay=c.preempt_delay, accept=c.accept, startup_delay=c.startup_delay,
        garp_repeat=c.garp_repeat, graceful_handover=c.graceful_handover, name=c.name,
        stop_before_leave=any(r.kind == "filesystem" for r in c.resources))


class Runner:
    """Run one [[instance]] (see the module docstring)."""

    def __init__(self, cfg: model.Instance, deps: RunnerDeps, *, parent_index: int,
                 parent_mac: str, primary: IPAddress, own: frozenset[IPAddress],
                 vmac: Vmac | None, sock: VrrpSocket) -> None:
        self.cfg = cfg
        self.d = deps
        self.loop = deps.loop
        self.parent_index = parent_index
        self.parent_mac = parent_mac
        self.primary = primary
        self.own = own                          # the parent's own addresses (unicast_peers skip)
        self.vmac = vmac
        self.src_mac = vmac.mac if vmac is not None else parent_mac
        self.sender = PacketSender(vmac.ifindex if vmac is not None else parent_index)
        self.metrics = deps.metrics.instance(cfg.name, cfg.vrid, cfg.interface)
        self.auth = auth_spec(cfg.auth)
        self.router = VirtualRouter(router_params(cfg, primary))
        # fsm.VirtualRouter.snapshot() is typed dict[str, object]: the value is a float (core/fsm.py)
        mdi_cs = self.router.snapshot()["master_down_interval_cs"]
        self.peers = PeerTable(tuple(v.ip for v in cfg.virtual_ips),
                               forget_after=max(3.0, 3 * mdi_cs / 100))  # type: ignore[operator]
        self.resources = ResourceSet(self.loop, deps.procs, cfg.name, cfg.resources, self)
        self.stopped: Deferred[None] = Deferred()
        self._timer: Timer | None = None
        self.out = InstanceSender(self, self.loop, self.metrics, self.router, self.sender, sock,
                                  parent_index=parent_index, src_mac=self.src_mac,
                                  rate_log=self.rate_log)
        self.intake = Intake(self)
        self.wall_offset = time.time() - self.loop.time()   # loop clock -> unix time, fixed
        self._shown = (-1, -1)
        self._errors: dict[str, tuple[float | None, int]] = {}
        self._pending: list[Deferred[JsonObject]] = []   # maintenance replies awaiting a handover
        self._dropping: list[str] = []             # VIPs a reload removed (claim drops them)
        self.metrics.state(self.router.state.value)
        self.metrics.interface_missing(False)
        self.metrics.resources([r.name for r in cfg.resources])
        self.metrics.trackers_configured(_tracker_names(cfg))
        self._show_priority()
        if self.filters_vips:
            # RFC 9568 §6.4.3-9: a non-owner master with accept = false takes no packets for
            # the VIPs (ARP and NS/NA still pass). The rule is installed once: while backup the
            # VIPs are not on the box, so it costs nothing at transition time.
            deps.accept_filter.add(cfg.name, self.vip_strings())
        owned = self.owned_addresses()
        if owned:
            deps.owner_filter.add(cfg.name, cfg.interface, parent_mac, owned)
        if deps.guardian is not None:
            deps.guardian.own(self.guard_spec())

    # ------------------------------------------------------------------ facts
    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def filters_vips(self) -> bool:
        return not self.cfg.accept and not self.cfg.owner

    def vip_strings(self) -> list[str]:
        return [str(v) for v in self.cfg.virtual_ips]

    def owned_addresses(self) -> list[str]:
        """VIPs that are the parent's own addresses (the address owner's, priority 255): only
        the vMAC may answer or announce them (linux.nft.OwnerFilter)."""
        if not (self.cfg.owner and self.cfg.vmac):
            return []
        return [str(v.ip) for v in self.cfg.virtual_ips if v.ip in self.own]

    def guard_spec(self) -> GuardSpec:
        """What the guardian needs to hand over for this instance if the daemon dies."""
        c = self.cfg
        adv = self.out.template(0)
        spec: GuardSpec = {
            "instance": c.name, "ifindex": self.sender.ifindex, "vmac": self.vmac is not None,
            "parent": self.parent_index, "family": c.family, "vrid": c.vrid,
            "version": c.version, "primary": str(self.primary), "interval_cs": c.advert_interval_cs,
            "vips": self.vip_strings(), "src_mac": self.src_mac,
            "bound": timers.seconds(timers.handover_bound_cs(c.advert_interval_cs, c.version)),
            "peers": [str(p) for p in self.out.unicast_peers()],
            "stop": [list(a) for a in self._exclusive_stops()],
            "auth": self.auth.type}
        if self.auth.type in ("hmac-sha256", "ah"):
            spec["key"] = self.auth.key.hex()
            spec["pseudo"] = c.v3_checksum_pseudoheader
            spec["addresses"] = [str(a) for a in adv.addresses]
        else:
            spec["frame"] = self.out.build_frame(0).hex()
        return spec

    def _exclusive_stops(self) -> list[tuple[str, ...]]:
        from vmacd.resources import commands
        return [commands(r)[1] for r in reversed(self.cfg.resources) if r.kind == "filesystem"]

    # ------------------------------------------------------------------ life
    def start(self, initial: list[object]) -> None:
        """Run every resource's stop once (a previous run may have left them started), then the
        initial conditions (`initial`: link, trackers) and Startup."""
        def go() -> None:
            for event in initial:
                self.handle(event)
            self.handle(Startup())

        if self.cfg.resources:
            self.resources.stop(then=go, force=True)
        else:
            go()

    def shutdown(self, reason: str) -> Deferred[None]:
        """Shutdown (priority 0, make-before-break); the Deferred resolves once let go."""
        if self.router.state in (State.STOPPED,):
            self.stopped.resolve(None)
        else:
            self.handle(Shutdown(reason))
        return self.stopped

    def close(self) -> None:
        """Forget timers and delete what this instance created (macvlan, VIPs, nft rules)."""
        self._cancel()
        self.out.stop_refresh()
        self.resources.detach()
        d = self.d
        if d.guardian is not None:
            d.guardian.disown(self.sender.ifindex, self.cfg.name)
        if self.vmac is not None:
            d.links.delete(self.vmac)
        elif self.router.holds_vips:
            d.links.release(self.parent_index, self.vip_strings())
        self.sender.close()
        if self.filters_vips:
            d.accept_filter.remove(self.cfg.name)
        if self.owned_addresses():
            d.owner_filter.remove(self.cfg.name)
        d.metrics.remove_instance(self.cfg.name)
        for pending in self._pending:
            pending.resolve({"ok": False, "error": f"{self.cfg.name}: instance stopped"})

    # ------------------------------------------------------------------ inputs
    def handle(self, event: object, now: float | None = None) -> list[Action]:
        """Feed one input to the router and execute what it asks (for sync groups: returns [])."""
        self.execute(self.router.handle(event, self.loop.time() if now is None else now))
        return []

    @property
    def group_directive(self) -> Directive:           # groups.GroupMember
        return self.router.group_directive

    def group_view(self) -> MemberView:
        return self.router.group_view()

    def on_timer(self) -> None:
        self._timer = None
        deadline = self.router.get_timer()
        now = self.loop.time()
        if deadline is None:
            return
        if deadline > now:
            if self.router.state is State.MASTER and deadline - now <= self._slack:
                now = deadline              # fired with another timer due at about this moment
            else:                           # it moved later since the handle was set: re-arm
                self._set_timer(deadline)
                return
        if self.router.state is State.BACKUP:
            # a stalled daemon (CPU starvation, SIGSTOP, a long pause) must not take over from a
            # live master: read what is queued first, then look at the deadline again
            self.d.drain()
            if self._timer is not None:
                return                      # draining re-armed us already
            deadline = self.router.get_timer()
            now = self.loop.time()
            if deadline is None or deadline > now:
                self._arm()
                return
        self.execute(self.router.handle_timer(now))

    def addresses_changed(self, found: str | None, own: frozenset[IPAddress]) -> None:
        """The parent's addresses changed: `found` is its primary (IPv4) / link-local (IPv6)."""
        self.own = own
        addr = ipaddress.ip_address(found) if found is not None else None
        if addr == self.primary and self.router.has_primary:
            return
        if addr is None:
            if self.router.has_primary:
                log.warning("%s: %s has no address to advertise from any more (was %s)",
                            self.cfg.name, self.cfg.interface, self.primary,
                            extra={"instance": self.cfg.name})
                self.handle(PrimaryChanged(None))
            return
        log.warning("%s: advertising from %s (%s)", self.cfg.name, addr,
                    "again" if addr == self.primary else f"was {self.primary}",
                    extra={"instance": self.cfg.name})
        self.primary = addr
        self.out.forget_frames()             # cached adverts carry the old source address
        self.intake.forget()
        self.handle(PrimaryChanged(addr))

    def maintenance(self, on: bool, force: bool) -> Deferred[JsonObject]:
        """Drain or undrain; the reply waits for the handover of a master (HandoverDone)."""
        reply: Deferred[JsonObject] = Deferred()
        self._pending.append(reply)
        self.handle(Maintenance(on, force))
        self.metrics.maintenance(self.router.maintenance)
        return reply

    def clear(self) -> JsonObject:
        failed = sorted(self.router.failed)
        self.handle(ClearFailures())
        return {"instance": self.cfg.name, "cleared": failed, "state": self.router.state.value}

    def update(self, cfg: model.Instance) -> None:
        """A reload changed this instance in place (same interface, VRID, family, version)."""
        old, self.cfg = self.cfg, cfg
        self.auth = auth_spec(cfg.auth)
        self.out.forget_frames()
        self.intake.forget()
        if old.accept != cfg.accept or (not cfg.accept and old.virtual_ips != cfg.virtual_ips):
            if not old.accept and not old.owner:
                self.d.accept_filter.remove(cfg.name)
            if self.filters_vips:
                self.d.accept_filter.add(cfg.name, self.vip_strings())
        if old.resources != cfg.resources:
            self.resources.update(cfg.resources)
            if self.router.serves:
                self.resources.start()        # added ones start on a master now
            self.metrics.resources([r.name for r in cfg.resources])
        self.metrics.trackers_configured(_tracker_names(cfg))
        if old.garp_refresh != cfg.garp_refresh and self.router.holds_vips:
            self.out.stop_refresh()
            self.out.start_refresh()
        if self.vmac is None and old.virtual_ips != cfg.virtual_ips and self.d.guardian is not None:
            for vip in old.virtual_ips:
                self.d.guardian.unvip(self.parent_index, str(vip))
        self._dropping = [str(v) for v in old.virtual_ips if v not in cfg.virtual_ips]
        self.peers.set_ours(tuple(v.ip for v in cfg.virtual_ips))
        self.handle(ParamsChanged(router_params(cfg, self.primary)))
        self._dropping = []
        if self.d.guardian is not None:
            self.d.guardian.own(self.guard_spec())
        self._show_priority()

    # ------------------------------------------------------------------ actions
    def execute(self, actions: list[Action]) -> None:
        if len(actions) == 1 and type(actions[0]) is SendAdvert:     # a master's steady rhythm
            try:
                self.out.send_advert(actions[0].priority)
            except Exception as exc:  # noqa: BLE001 - reported like any failing action
                self._action_failed(actions[0], exc)
            self._arm()
            return
        changed = False
        for action in actions:
            try:
                changed |= self._do(action)
            except Exception as exc:  # noqa: BLE001 - one failing action must not stop the others
                self._action_failed(action, exc)
        self._arm()
        self._show_priority()
        if changed:
            self.d.state_changed(self)

    def _show_priority(self) -> None:
        shown = (self.cfg.priority, self.router.shown_priority)
        if shown != self._shown:                      # tracking or a drain moved it
            self._shown = shown
            self.metrics.priority(*shown)

    def _do(self, a: Action) -> bool:
        match a:            # class patterns: the action types are final (core/events.py)
            case SendAdvert():
                self.out.send_advert(a.priority)
            case ClaimVips():
                self._claim()
            case ReleaseVips():
                self._release()
            case Announce():
                self.out.announce(a.repeat)
            case StateChanged():
                self._state_changed(a)
                return True
            case RunResources():
                self._resources(a.what)
            case Notify():
                self._notify(a.state, a.priority)
            case Drop():
                self.metrics.dropped(a.reason)
            case Log():
                self._log(a)
            case MasterSeen():
                self.metrics.master_seen(None if a.src is None else str(a.src))
                if self.resources.prepared and a.priority > 0:
                    self.resources.stop()    # someone else took over: our early start is moot
            case DualMaster():
                self.metrics.dual_master()
            case PrepareTakeover():
                if self.cfg.resources and not self.resources.exclusive and not self.router.failed:
                    self.resources.start(prepared=True)   # serve from our first frame as master
            case HandoverDone():
                self._handover_done(a)
            case Stopped():
                self.stopped.resolve(None)
        return False

    def _action_failed(self, action: Action, exc: Exception) -> None:
        """Log a failing action, at most once per ERROR_LOG_EVERY seconds per kind of action
        (a failing SendAdvert would otherwise log at the advertisement rate)."""
        kind = type(action).__name__
        suppressed = self._due(kind)
        if suppressed is None:
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.error("%s: %s failed: %s%s", self.cfg.name, kind, exc, more,
                  extra={"instance": self.cfg.name, "suppressed": suppressed})

    def rate_log(self, kind: str, message: str) -> None:
        """A warning, at most once per ERROR_LOG_EVERY seconds per `kind`."""
        suppressed = self._due(kind)
        if suppressed is None:
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("%s: %s%s", self.cfg.name, message, more, extra={"instance": self.cfg.name})

    def _due(self, kind: str) -> int | None:
        """May a line of `kind` be logged now? The number of lines suppressed since the last one,
        or None (this one is suppressed and counted)."""
        now = self.loop.time()
        last, suppressed = self._errors.get(kind, (None, 0))
        if last is not None and now - last < ERROR_LOG_EVERY:
            self._errors[kind] = (last, suppressed + 1)
            return None
        self._errors[kind] = (now, 0)
        return suppressed

    def _log(self, a: Log) -> None:
        extra = {"instance": self.cfg.name, "kind": a.kind, "suppressed": a.suppressed}
        log.log(_LOG_LEVELS.get(a.level, logging.INFO), "%s: %s", self.cfg.name, a.message,
                extra=extra)

    def _claim(self) -> None:
        """vMAC up and VIPs added, in one netlink batch, before anything leaves the vMAC: the
        first frame from it moves the switch's FDB entry here, so the VIPs must be here then."""
        vips = self.vip_strings()
        if self.vmac is None:
            if self.d.guardian is not None:              # vmac = false: the guardian removes them
                for vip in vips:
                    self.d.guardian.vip(self.parent_index, vip)
            self.d.links.claim(self.parent_index, vips, drop=self._dropping)
        else:
            self.d.links.claim(self.vmac, vips, drop=self._dropping)
        self.out.start_refresh()

    def _release(self) -> None:
        self.out.stop_refresh()
        vips = self.vip_strings()
        if self.vmac is not None:
            self.d.links.release(self.vmac, vips)
        else:                                            # only ours: others share the parent
            self.d.links.release(self.parent_index, vips)
            if self.d.guardian is not None:
                for vip in vips:
                    self.d.guardian.unvip(self.parent_index, vip)

    def _state_changed(self, a: StateChanged) -> None:
        self.metrics.transition(a.old, a.new, self.wall_offset + a.time)
        log.info("%s: %s -> %s (%s)", self.cfg.name, a.old, a.new, a.reason,
                 extra={"instance": self.cfg.name, "from": a.old, "to": a.new, "reason": a.reason})

    def _resources(self, what: str) -> None:
        if what == "start":
            self.resources.start()
        elif self.router.state is State.MASTER and self.router.leaving:
            self.resources.stop(then=lambda: self.handle(ResourcesStopped()))
        else:
            self.resources.stop()

    # ResourceEvents
    def failed(self, resource: model.Resource, op: str, detail: str) -> None:
        self.metrics.resource_failure(resource.name, op)
        if op == "stop":
            return                   # nothing to hand over: it is stopping already
        self.handle(ResourceFailed(resource.name, op, resource.failure_timeout))

    def changed(self, resource: str, up: bool) -> None:
        self.metrics.resource_up(resource, up)

    def _notify(self, state: str, priority: int) -> None:
        word = "STOP" if state == "stopped" else state.upper()      # keepalived's words
        script = self.cfg.notify or self.d.notify_script
        if script:
            self.d.procs.run([script, "INSTANCE", self.cfg.name, word, str(priority)],
                             NOTIFY_TIMEOUT, self._notify_done, key=f"notify:{self.cfg.name}")
        per_state = {"master": self.cfg.notify_master, "backup": self.cfg.notify_backup,
                     "fault": self.cfg.notify_fault, "stopped": self.cfg.notify_stop}.get(state)
        if per_state:
            self.d.procs.run(per_state, NOTIFY_TIMEOUT, self._notify_done,
                             key=f"notify:{self.cfg.name}")

    def _notify_done(self, result: Result) -> None:
        if not result.ok:
            log.warning("%s: notify script %s failed: %s", self.cfg.name, result.argv[0],
                        result.describe(), extra={"instance": self.cfg.name})

    def _handover_done(self, a: HandoverDone) -> None:
        self.metrics.maintenance(self.router.maintenance)
        pending, self._pending = self._pending, []
        for reply in pending:
            reply.resolve({"ok": a.ok, "instance": self.cfg.name, "detail": a.detail,
                           "maintenance": self.router.maintenance,
                           "state": self.router.state.value} if a.ok else
                          {"ok": False, "error": f"{self.cfg.name}: {a.detail}"})

    # ------------------------------------------------------------------ timers
    def _arm(self) -> None:
        """Follow router.get_timer() with one loop handle, moved whenever the deadline moves (a
        backup's Master_Down deadline moves with every advertisement: a cancelled handle costs a
        heap entry, a handle left to fire early would cost a wake-up)."""
        deadline = self.router.get_timer()
        timer = self._timer
        if deadline is None:
            self._cancel()
        elif timer is None or deadline != timer.when:
            if timer is not None:
                timer.cancel()
            self._set_timer(deadline)

    rearm = _arm

    def _set_timer(self, deadline: float) -> None:
        self._timer = timer = self.loop.call_at(deadline, self.on_timer)
        if self.router.state is State.MASTER:
            timer.slack = self._slack

    @property
    def _slack(self) -> float:
        """How early a master's timer may fire with others due at about the same moment: 1 % of
        the advertisement interval, at most 1 ms (255 VRIDs: fewer wake-ups, the rhythm kept)."""
        return min(SEND_SLACK_MAX, self.cfg.advert_interval_cs / 10_000)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None


def _tracker_names(cfg: model.Instance) -> list[str]:
    return ([f"if:{t.name}" for t in cfg.track_interfaces]
            + [f"script:{t.name}" for t in cfg.track_scripts]
            + [f"file:{t.path}" for t in cfg.track_files])
