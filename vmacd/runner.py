"""One configured VRRP instance at run time: the pure VirtualRouter wired to the kernel.

A `Runner` is built whole, in one step, from what the daemon prepared (its parent interface, the
address it advertises from, its vMAC device, its receive socket). It is the only way into its
router, and every input ends the same way:

    receive4/receive6 (packet) ─┐
    on_timer (its deadline) ────┼─> router.handle(...) -> execute(actions) -> links / sender / procs
    handle (link, track, group, ┘                         (then: re-arm the one timer handle)
      maintenance, reload)

The runner owns decoding (with a one-entry cache: a master repeats the same bytes every interval,
and `VirtualRouter.repeat()` stands for their full handling), the replay guard, the advert frames
(prebuilt per priority), the resources (`ResourceSet`) and the timer handle. It reports state
changes to its `RunnerDeps.state_changed` (sync groups, systemd status).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any, Protocol

from vmacd.config import model
from vmacd.core import auth as core_auth
from vmacd.core import l2, timers, wire
from vmacd.core.events import (
    Action,
    AdvertReceived,
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
from vmacd.core.params import RouterParams
from vmacd.core.peers import PeerTable
from vmacd.core.proto import VRRP_GROUP_V4, VRRP_GROUP_V6, IPAddress
from vmacd.linux.link import PacketSender
from vmacd.linux.links import Links, Vmac
from vmacd.linux.procs import Processes, Result
from vmacd.linux.sockets import VrrpSocket
from vmacd.loop import Deferred, Loop, Timer
from vmacd.resources import ResourceSet

log = logging.getLogger("vmacd.instance")

ANNOUNCE_SPACING = 0.05          # seconds between repeated GARP/NA rounds
NOTIFY_TIMEOUT = 10.0            # seconds a notify script may run
ERROR_LOG_EVERY = 10.0           # seconds between two log lines of one failing kind of action
RECLAIM_PER_S = 200.0            # re-assertions of the vMAC a second, at most (a flood of replays)
AH_EPOCH = 1704067200            # 2024-01-01T00:00:00Z, origin of the AH sequence numbers
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
               "error": logging.ERROR}


class RunnerDeps(Protocol):
    """What the daemon lends every runner."""

    loop: Loop
    links: Links
    metrics: Any                 # control.metrics.Metrics
    procs: Processes
    guardian: Any                # linux.guardian.Guardian | None
    accept_filter: Any           # linux.nft.AcceptModeFilter
    owner_filter: Any            # linux.nft.OwnerFilter
    notify_script: str | None

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
        self.sock = sock
        self.src_mac = vmac.mac if vmac is not None else parent_mac
        self.sender = PacketSender(vmac.ifindex if vmac is not None else parent_index)
        self.metrics = deps.metrics.instance(cfg.name, cfg.vrid, cfg.interface)
        self.auth = auth_spec(cfg.auth)
        self.replay = core_auth.ReplayGuard()
        self.router = VirtualRouter(router_params(cfg, primary))
        self.peers = PeerTable(tuple(v.ip for v in cfg.virtual_ips), forget_after=max(
            3.0, 3 * self.router.snapshot()["master_down_interval_cs"] / 100))   # type: ignore[operator]
        self._peer: object | None = None          # the row of the peer accepted last
        self.resources = ResourceSet(self.loop, deps.procs, cfg.name, cfg.resources, self)
        self.stopped = Deferred()
        self._timer: Timer | None = None
        self._refresh: Timer | None = None
        self._frames: dict[int, bytes] = {}                # priority -> advert frame (no counter)
        self._counter = time.time_ns() // 1000             # hmac-sha256: monotonic across restarts
        # AH sequence: keepalived keeps the highest number it saw and drops anything not above
        # it, so a restart must not begin at 1 again: tenths of a second since 2024 stay ahead of
        # any earlier run that sent fewer than 10 adverts a second (v2 sends one a second).
        self._ah_seq = int((time.time() - AH_EPOCH) * 10) % core_auth.AH_SEQ_MAX
        self._wall_offset = time.time() - self.loop.time()   # loop clock -> unix time, fixed
        self._last_key: bytes | None = None        # the bytes of the advert accepted last
        self._last_adv: wire.Advertisement | None = None
        self._last_heard: float | None = None      # warn_after: the master's previous advert
        self._shown = (-1, -1)
        self._errors: dict[str, tuple[float | None, int]] = {}
        self._pending: list[Deferred] = []         # maintenance replies waiting for a handover
        self._dropping: list[str] = []             # VIPs a reload removed (claim drops them)
        self._reclaim_tokens = RECLAIM_PER_S / 10
        self._reclaim_at = 0.0
        self._frame_mcast = (VRRP_GROUP_V4 if cfg.family == 4 else VRRP_GROUP_V6)
        self._primary_packed = primary.packed
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

    def guard_spec(self) -> dict:
        """What the guardian needs to hand over for this instance if the daemon dies."""
        c = self.cfg
        adv = self._template(0)
        spec: dict = {"instance": c.name, "ifindex": self.sender.ifindex, "vmac": self.vmac is not None,
                      "parent": self.parent_index, "family": c.family, "vrid": c.vrid,
                      "version": c.version, "primary": str(self.primary),
                      "interval_cs": c.advert_interval_cs,
                      "vips": self.vip_strings(), "src_mac": self.src_mac,
                      "bound": timers.seconds(timers.handover_bound_cs(c.advert_interval_cs,
                                                                       c.version)),
                      "peers": [str(p) for p in self.unicast_peers()],
                      "stop": [list(a) for a in self._exclusive_stops()],
                      "auth": self.auth.type}
        if self.auth.type in ("hmac-sha256", "ah"):
            spec["key"] = self.auth.key.hex()
            spec["pseudo"] = c.v3_checksum_pseudoheader
            spec["addresses"] = [str(a) for a in adv.addresses]
        else:
            spec["frame"] = self._build_frame(0).hex()
        return spec

    def _exclusive_stops(self) -> list[tuple[str, ...]]:
        from vmacd.resources import commands
        return [commands(r)[1] for r in reversed(self.cfg.resources) if r.kind == "filesystem"]

    def unicast_peers(self) -> list[IPAddress]:
        """The configured peers minus this box's own addresses (one file serves every node)."""
        return [p for p in self.cfg.unicast_peers if p not in self.own]

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

    def shutdown(self, reason: str) -> Deferred:
        """Shutdown (priority 0, make-before-break); the Deferred resolves once let go."""
        if self.router.state in (State.STOPPED,):
            self.stopped.resolve()
        else:
            self.handle(Shutdown(reason))
        return self.stopped

    def close(self) -> None:
        """Forget timers and delete what this instance created (macvlan, VIPs, nft rules)."""
        self._cancel()
        if self._refresh is not None:
            self._refresh.cancel()
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
    def group_directive(self):                         # groups.GroupMember
        return self.router.group_directive

    def group_view(self):
        return self.router.group_view()

    def receive4(self, data: bytes, ihl: int) -> None:
        """An IPv4 packet (header included) from this instance's socket, routed by VRID."""
        if data[12:16] == self._primary_packed:
            self._own_frame()
            return
        key = data[8:9] + data[12:20] + data[ihl:]     # TTL, source, destination, VRRP message
        if key == self._last_key and self.router.repeat(now := self.loop.time()):
            self._repeated(now)
            return
        try:
            if data[9] == wire.IPPROTO_AH:
                adv = wire.decode_ip_packet(data, self.auth,
                                            pseudo_header=self.cfg.v3_checksum_pseudoheader,
                                            strict_checksum=self.cfg.v3_checksum_strict)
            else:
                adv = wire.decode(data[ihl:], src=_ip4(data[12:16]), dst=_ip4(data[16:20]),
                                  ttl=data[8], auth=self.auth,
                                  pseudo_header=self.cfg.v3_checksum_pseudoheader,
                                  strict_checksum=self.cfg.v3_checksum_strict)
        except wire.PacketError as exc:
            self._dropped(exc, _ip4(data[12:16]))
            return
        self._accept_decoded(adv, key)

    def receive6(self, data: bytes, src: IPAddress, dst: IPAddress | None,
                 hops: int | None) -> None:
        """An IPv6 VRRP payload with the metadata the kernel gave (hop limit from a cmsg)."""
        if src == self.primary:
            self._own_frame()
            return
        key = bytes((hops or 0,)) + src.packed + (dst.packed if dst else b"") + data
        if key == self._last_key and self.router.repeat(now := self.loop.time()):
            self._repeated(now)
            return
        try:
            adv = wire.decode(data, src=src, dst=dst or self._frame_mcast, ttl=hops,
                              auth=self.auth, pseudo_header=self.cfg.v3_checksum_pseudoheader,
                              strict_checksum=self.cfg.v3_checksum_strict,
                              strict_link_local=self.cfg.ipv6_link_local_first_strict)
        except wire.PacketError as exc:
            self._dropped(exc, src)
            return
        self._accept_decoded(adv, key)

    def _accept_decoded(self, adv: wire.Advertisement, key: bytes) -> None:
        if self.auth.type in ("hmac-sha256", "ah"):
            try:
                self.replay.check(adv)
            except wire.PacketError as exc:
                self._dropped(exc, adv.src)
                return
        now = self.loop.time()
        actions = self.router.handle(AdvertReceived(adv), now)
        drops = [a for a in actions if type(a) is Drop]
        if drops:                                           # a refused advert only counts a drop
            if adv.src is not None:
                self.peers.refused(adv.src, drops[0].reason, drops[0].detail, now)
        else:
            self._heard(adv, now)
            if adv.src is not None:
                self.peers.heard(adv, now)
                self._peer = self.peers.row(adv.src)
            if adv.priority == 0:
                self.metrics.priority_zero_received()
        counters = self.auth.type in ("hmac-sha256", "ah")  # a repeat of those is a replay
        if self.router.repeat_ok and not counters:
            self._last_key, self._last_adv = key, adv
        else:
            self._last_key = None
        self.execute(actions)

    def _repeated(self, now: float) -> None:
        """The repeat of the advert accepted last: counters and its sender's row, cheaply."""
        self._heard(self._last_adv, now)                    # type: ignore[arg-type]
        peer = self._peer
        if peer is not None:
            peer.last = now                                 # type: ignore[attr-defined]
            peer.accepted += 1                              # type: ignore[attr-defined]

    def _heard(self, adv: wire.Advertisement, now: float) -> None:
        """Counters, checksum form and Heartbeat's warntime for an accepted advert."""
        m = self.metrics
        m.advert_received()
        if adv.version == 3 and adv.family == 4:
            m.checksum_variant(adv.checksum)
        if self.router.state is not State.BACKUP or adv.priority == 0:
            self._last_heard = None
            return
        last, self._last_heard = self._last_heard, now
        if last is None:
            return
        gap = now - last
        m.interval(gap)
        if self.cfg.warn_after and gap > self.cfg.warn_after:
            m.late()
            log.warning("%s: advertisement late: %.0f ms since the previous one (warn_after %.0f ms)",
                        self.cfg.name, gap * 1000, self.cfg.warn_after * 1000,
                        extra={"instance": self.cfg.name, "gap_ms": round(gap * 1000, 1)})

    def _dropped(self, exc: wire.PacketError, src: IPAddress | None) -> None:
        self.metrics.dropped(exc.reason)
        if src is not None:
            self.peers.refused(src, exc.reason, exc.detail, self.loop.time())
        self.d_log_drop(exc.reason, f"{self.cfg.name}: from {src}: {exc.detail}")

    def d_log_drop(self, reason: str, detail: str) -> None:
        """RFC 9568 §7.1 SHOULD log discards, rate-limited: at most one line a second."""
        now = self.loop.time()
        last, _n = self._errors.get("drop", (None, 0))
        if last is None or now - last >= 1.0:
            self._errors["drop"] = (now, 0)
            log.info("dropped advertisement (%s): %s", reason, detail, extra={"reason": reason})

    def _own_frame(self) -> None:
        """A frame claiming to be ours that we did not send (a replay, a loop, a spoof) also
        moved the switch's FDB entry for our vMAC to wherever it came from: a master re-asserts
        the vMAC at once (rate-limited); a backup reports it and does not fight."""
        now = self.loop.time()
        fight = self.router.state is State.MASTER and not self.router.leaving
        self.metrics.own_frame("reasserted" if fight else "reported")
        if not fight:
            self._rate_log("own-frame", "received a frame with our own source address while "
                           f"{self.router.state.value}: another box replays or spoofs it")
            return
        self._reclaim_tokens = min(RECLAIM_PER_S / 10, self._reclaim_tokens
                                   + (now - self._reclaim_at) * RECLAIM_PER_S)
        self._reclaim_at = now
        if self._reclaim_tokens < 1:
            return
        self._reclaim_tokens -= 1
        self.send_advert(self.router.effective_priority)
        self._rate_log("own-frame", "a replayed or looped copy of our advertisement arrived: "
                       "re-asserted the vMAC")

    def on_timer(self) -> None:
        self._timer = None
        deadline = self.router.get_timer()
        now = self.loop.time()
        if deadline is None:
            return
        if deadline > now:                  # it moved later since the handle was set: re-arm
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
        self._primary_packed = addr.packed
        self._frames.clear()                 # cached adverts carry the old source address
        self._last_key = None
        self.handle(PrimaryChanged(addr))

    def maintenance(self, on: bool, force: bool) -> Deferred:
        """Drain or undrain; the reply waits for the handover of a master (HandoverDone)."""
        reply = Deferred()
        self._pending.append(reply)
        self.handle(Maintenance(on, force))
        self.metrics.maintenance(self.router.maintenance)
        return reply

    def clear(self) -> dict:
        failed = sorted(self.router.failed)
        self.handle(ClearFailures())
        return {"instance": self.cfg.name, "cleared": failed, "state": self.router.state.value}

    def update(self, cfg: model.Instance) -> None:
        """A reload changed this instance in place (same interface, VRID, family, version)."""
        old, self.cfg = self.cfg, cfg
        self.auth = auth_spec(cfg.auth)
        self._frames.clear()
        self._last_key = None
        if old.accept != cfg.accept or (not cfg.accept and old.virtual_ips != cfg.virtual_ips):
            if not old.accept and not old.owner:
                self.d.accept_filter.remove(cfg.name)
            if self.filters_vips:
                self.d.accept_filter.add(cfg.name, self.vip_strings())
        if old.resources != cfg.resources:
            self.resources.update(cfg.resources)
            self.metrics.resources([r.name for r in cfg.resources])
        self.metrics.trackers_configured(_tracker_names(cfg))
        if old.garp_refresh != cfg.garp_refresh and self.router.holds_vips:
            if self._refresh is not None:
                self._refresh.cancel()
                self._refresh = None
            if cfg.garp_refresh:
                self._schedule_refresh()
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
        kind = type(a)
        if kind is SendAdvert:
            self.send_advert(a.priority)             # type: ignore[union-attr]
        elif kind is ClaimVips:
            self._claim()
        elif kind is ReleaseVips:
            self._release()
        elif kind is Announce:
            self._announce(a.repeat)                 # type: ignore[union-attr]
        elif kind is StateChanged:
            self._state_changed(a)                   # type: ignore[arg-type]
            return True
        elif kind is RunResources:
            self._resources(a.what)                  # type: ignore[union-attr]
        elif kind is Notify:
            self._notify(a.state, a.priority)        # type: ignore[union-attr]
        elif kind is Drop:
            self.metrics.dropped(a.reason)           # type: ignore[union-attr]
        elif kind is Log:
            self._log(a)                             # type: ignore[arg-type]
        elif kind is MasterSeen:
            self.metrics.master_seen(None if a.src is None else str(a.src))  # type: ignore[union-attr]
            if self.resources.prepared and a.priority > 0:                  # type: ignore[union-attr]
                self.resources.stop()        # someone else took over: our early start is moot
        elif kind is DualMaster:
            self.metrics.dual_master()
        elif kind is PrepareTakeover:
            if self.cfg.resources and not self.resources.exclusive and not self.router.failed:
                self.resources.start(prepared=True)   # serve from our first frame as master
        elif kind is HandoverDone:
            self._handover_done(a)                   # type: ignore[arg-type]
        elif kind is Stopped:
            self.stopped.resolve()
        return False

    def _action_failed(self, action: Action, exc: Exception) -> None:
        """Log a failing action, at most once per ERROR_LOG_EVERY seconds per kind of action
        (a failing SendAdvert would otherwise log at the advertisement rate)."""
        kind, now = type(action).__name__, self.loop.time()
        last, suppressed = self._errors.get(kind, (None, 0))
        if last is not None and now - last < ERROR_LOG_EVERY:
            self._errors[kind] = (last, suppressed + 1)
            return
        self._errors[kind] = (now, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.error("%s: %s failed: %s%s", self.cfg.name, kind, exc, more,
                  extra={"instance": self.cfg.name, "suppressed": suppressed})

    def _rate_log(self, kind: str, message: str) -> None:
        now = self.loop.time()
        last, suppressed = self._errors.get(kind, (None, 0))
        if last is not None and now - last < ERROR_LOG_EVERY:
            self._errors[kind] = (last, suppressed + 1)
            return
        self._errors[kind] = (now, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("%s: %s%s", self.cfg.name, message, more, extra={"instance": self.cfg.name})

    def _log(self, a: Log) -> None:
        extra = {"instance": self.cfg.name, "kind": a.kind, "suppressed": a.suppressed}
        log.log(_LOG_LEVELS.get(a.level, logging.INFO), "%s: %s", self.cfg.name, a.message,
                extra=extra)

    def send_advert(self, priority: int) -> None:
        if priority == 0:
            self.metrics.priority_zero_sent()
        if self.cfg.unicast_peers:
            self._send_unicast(priority)
            return
        frame = self._frames.get(priority) or self._build_frame(priority)
        err = self.sender.send(frame)
        if err:
            self._rate_log("send", f"advertisement not sent: {err}")
            return
        self.metrics.advert_sent()

    def _template(self, priority: int) -> wire.Advertisement:
        c = self.cfg
        return wire.Advertisement(version=c.version, vrid=c.vrid, priority=priority,
                                  interval_cs=c.advert_interval_cs,
                                  addresses=tuple(v.ip for v in c.virtual_ips))

    def _codec_options(self) -> dict:
        """Codec options for the next advert: a fresh counter for hmac-sha256 / AH."""
        kw: dict = {"pseudo_header": self.cfg.v3_checksum_pseudoheader, "auth": self.auth}
        if self.auth.type == "hmac-sha256":
            self._counter += 1
            kw["counter"] = self._counter
        elif self.auth.type == "ah":
            self._ah_seq = self._ah_seq % core_auth.AH_SEQ_MAX + 1
            kw["counter"] = self._ah_seq
        return kw

    def _build_frame(self, priority: int) -> bytes:
        """Ethernet frame from the vMAC to the VRRP group; cached unless a counter is in it."""
        kw = self._codec_options()
        packet = wire.build_ip_packet(self._template(priority), src=self.primary,
                                      dst=self._frame_mcast, **kw)
        frame = wire.build_frame(self.src_mac, packet)
        if "counter" not in kw:
            self._frames[priority] = frame
        return frame

    def _send_unicast(self, priority: int) -> None:
        """unicast_peers: one raw-socket datagram per peer (this box's own addresses skipped)."""
        adv = self._template(priority)
        for peer in self.unicast_peers():
            payload = wire.encode(adv, src=self.primary, dst=peer, **self._codec_options())
            err = self.sock.send_unicast(payload, str(peer), self.parent_index)
            if err:
                self._rate_log("unicast", f"unicast advertisement to {peer} not sent: {err}")
            else:
                self.metrics.advert_sent()

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
        if self.cfg.garp_refresh and self._refresh is None:
            self._schedule_refresh()

    def _release(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        vips = self.vip_strings()
        if self.vmac is not None:
            self.d.links.release(self.vmac, vips)
        else:                                            # only ours: others share the parent
            self.d.links.release(self.parent_index, vips)
            if self.d.guardian is not None:
                for vip in vips:
                    self.d.guardian.unvip(self.parent_index, vip)

    def _announce(self, repeat: int) -> None:
        frames = self.announce_frames()
        self._send_frames(frames)
        for i in range(1, max(1, repeat)):
            self.loop.call_later(i * ANNOUNCE_SPACING, self._send_frames, frames)

    def announce_frames(self) -> list[bytes]:
        """One gratuitous ARP / unsolicited NA per VIP, from the vMAC (RFC 9568 §6.4.2)."""
        vips = [v.ip for v in self.cfg.virtual_ips]
        if self.cfg.family == 4:
            return [l2.garp_frame(self.src_mac, vip) for vip in vips]
        return [l2.unsolicited_na_frame(self.src_mac, self.primary, vip) for vip in vips]

    def _send_frames(self, frames: list[bytes]) -> None:
        if not self.router.holds_vips:
            return                    # lost mastership before a repeat was due
        sent = sum(1 for f in frames if not self.sender.send(f))
        self.metrics.garp_sent(sent)

    def _schedule_refresh(self) -> None:
        def refresh() -> None:
            self._refresh = None
            if self.router.holds_vips:
                self._send_frames(self.announce_frames())
                self._schedule_refresh()

        self._refresh = self.loop.call_later(self.cfg.garp_refresh, refresh)

    def _state_changed(self, a: StateChanged) -> None:
        self.metrics.transition(a.old, a.new, self._wall_offset + a.time)
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
        """Follow router.get_timer() with one loop handle.

        A backup's Master_Down deadline moves later with every advertisement; cancelling and
        re-creating the handle each time would cost more than the rest of the receive path. A
        handle that fires too early is harmless: on_timer re-checks the deadline and re-arms.
        Only an earlier (or first) deadline replaces the handle."""
        deadline = self.router.get_timer()
        if deadline is None:
            self._cancel()
        elif self._timer is None or deadline < self._timer.when:
            self._cancel()
            self._set_timer(deadline)

    def _set_timer(self, deadline: float) -> None:
        self._timer = self.loop.call_at(deadline, self.on_timer)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        r = self.router
        snap = r.snapshot()
        now, deadline = self.loop.time(), r.get_timer()
        ms = snap["master_seen"]
        master = None
        if r.state is State.MASTER:
            master = {"src": str(self.primary), "priority": snap["effective_priority"],
                      "interval_ms": self.cfg.advert_interval_cs * 10}
        elif ms is not None:
            master = {"src": ms["src"], "priority": ms["priority"],          # type: ignore[index]
                      "interval_ms": ms["interval_cs"] * 10}                # type: ignore[index]
        last = snap["last_transition"]
        failed = {name: {"op": info["op"],                                  # type: ignore[index]
                         "until": None if info["until"] is None             # type: ignore[index]
                         else self._wall_offset + info["until"]}            # type: ignore[index]
                  for name, info in snap["failed"].items()}                 # type: ignore[union-attr]
        return {
            "name": self.cfg.name, "vrid": self.cfg.vrid, "interface": self.cfg.interface,
            "family": self.cfg.family, "version": self.cfg.version, "state": snap["state"],
            "priority": self.cfg.priority, "effective_priority": snap["effective_priority"],
            "vmac": self.src_mac if self.vmac is not None else None,
            "vmac_ifname": None if self.vmac is None else self.vmac.ifname,
            "vips": self.vip_strings(), "master": master,
            "timers": {
                "adver_interval_ms": self.cfg.advert_interval_cs * 10,
                "master_adver_interval_ms": snap["master_adver_interval_cs"] * 10,  # type: ignore[operator]
                "master_down_interval_ms": round(snap["master_down_interval_cs"] * 10, 2),  # type: ignore[operator]
                "skew_ms": round(snap["skew_time_cs"] * 10, 2),                    # type: ignore[operator]
                "next_timer_in_ms": None if deadline is None
                else round((deadline - now) * 1000, 1)},
            "since": None if last is None else self._wall_offset + last["time"],  # type: ignore[index]
            "maintenance": snap["maintenance"], "faults": snap["faults"],
            "failed": failed, "resources": self.resources.status(),
            "peers": self.peers.status(now),
            "trackers": {t.name: t.up for t in r.tracking.states},
        }

    def history(self) -> list[dict]:
        return [{"time": self._wall_offset + t.time, "instance": self.cfg.name,
                 "from": t.old, "to": t.new, "reason": t.reason} for t in self.router.history]


def _tracker_names(cfg: model.Instance) -> list[str]:
    return ([f"if:{t.name}" for t in cfg.track_interfaces]
            + [f"script:{t.name}" for t in cfg.track_scripts]
            + [f"file:{t.path}" for t in cfg.track_files])


_IP4: dict[bytes, ipaddress.IPv4Address] = {}


def _ip4(raw: bytes) -> ipaddress.IPv4Address:
    """Address objects of the few peers of a LAN, made once."""
    addr = _IP4.get(raw)
    if addr is None:
        if len(_IP4) > 4096:
            _IP4.clear()
        addr = _IP4[raw] = ipaddress.IPv4Address(raw)
    return addr

