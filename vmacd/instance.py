"""One configured VRRP instance at run time: the pure VirtualRouter wired to the kernel.

`InstanceRunner` owns the instance's vMAC macvlan, its AF_PACKET sender and its timer handle. It
feeds the router inputs (`handle`) and executes the actions it returns, in order (STYLE §7):
SendAdvert -> frame from the vMAC, ClaimVips/ReleaseVips -> netlink, Announce -> GARP/NA frames,
RunResources/Notify -> the serial process runner, the rest -> metrics, logs, history.
The daemon (vmacd/daemon.py) routes packets and link/track events here and re-arms nothing
itself: every entry point ends in `_arm()`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import netifaces

from vmacd.config import model
from vmacd.core import auth as core_auth
from vmacd.core import l2, wire
from vmacd.core.events import (
    Action,
    AdvertReceived,
    Announce,
    ClaimVips,
    Drop,
    DualMaster,
    Log,
    MasterSeen,
    Notify,
    PrimaryChanged,
    ReleaseVips,
    RunResources,
    SendAdvert,
    StateChanged,
    Stopped,
    TrackChanged,
)
from vmacd.core.fsm import State, VirtualRouter
from vmacd.core.params import RouterParams

log = logging.getLogger("vmacd.instance")

ANNOUNCE_SPACING = 0.05          # seconds between repeated GARP/NA rounds
NOTIFY_TIMEOUT = 10.0            # seconds a notify script may run
ERROR_LOG_EVERY = 10.0           # seconds between two log lines of one failing kind of action
AH_EPOCH = 1704067200            # 2024-01-01T00:00:00Z, origin of the AH sequence numbers
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
               "error": logging.ERROR}


@dataclass
class Wiring:
    """What the daemon lends every instance: kernel handles, metrics, the process runner."""

    loop: asyncio.AbstractEventLoop
    vmacs: object                 # linux.netlink.VmacManager
    metrics: object               # control.metrics.Metrics
    procs: object                 # linux.procs.SerialRunner-like: submit(key, argv, timeout, cb)
    unicast_send: Callable[[int, bytes, str, int], bool]   # (family, payload, peer, ifindex)
    on_change: Callable[[InstanceRunner], None]          # state changed (sync groups, sd status)
    notify_script: str | None = None
    guardian: object | None = None
    accept_filter: object | None = None   # linux.nft.AcceptModeFilter
    owner_filter: object | None = None    # linux.nft.OwnerFilter


def auth_spec(auth: model.Auth | None) -> core_auth.AuthSpec:
    """The codec's view of an [auth.NAME] table."""
    if auth is None or auth.type == "none":
        return core_auth.NO_AUTH
    return core_auth.AuthSpec(type=auth.type, key=auth.key or b"")


class InstanceRunner:
    """Run one [[instance]]: create its vMAC, drive its VirtualRouter, execute the actions."""

    def __init__(self, cfg: model.Instance, wiring: Wiring) -> None:
        self.cfg = cfg
        self.w = wiring
        self.parent_index = wiring.vmacs.ifindex(cfg.interface)
        self.metrics = wiring.metrics.instance(cfg.name, cfg.vrid, cfg.interface)
        self.auth = auth_spec(cfg.auth)
        self.replay = core_auth.ReplayGuard()
        # the last advertisement decoded for this instance, keyed by (payload, src, dst, ttl): a
        # master repeats the same bytes every interval, and decoding is a pure function of those
        # (the config is fixed for this runner's life), so the daemon reuses the result
        self.last_decoded: tuple[tuple, wire.Advertisement] | None = None
        self.vmac = None              # linux.netlink.Vmac when cfg.vmac
        self.send_index = self.parent_index
        self.src_mac = ""
        self.primary: wire.IPAddress | None = None
        self.router: VirtualRouter | None = None
        self.sender = None            # linux.link.PacketSender
        self._timer: asyncio.TimerHandle | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._counter = time.time_ns() // 1000          # hmac-sha256: monotonic across restarts
        self._wall_offset = time.time() - wiring.loop.time()   # loop clock -> unix time, fixed
        # AH sequence: keepalived keeps the highest number it saw and drops anything not above
        # it, so a restart must not begin at 1 again: start from the clock in tenths of a
        # second since 2024, ahead of any run that sent fewer than 10 adverts a second on average
        # (v2 sends one a second). 32 bits of tenths last until 2037.
        self._ah_seq = int((time.time() - AH_EPOCH) * 10) % core_auth.AH_SEQ_MAX
        self._frames: dict[int, bytes] = {}             # priority -> advert frame (no counter)
        self._last_advert: float | None = None
        self.stopped = asyncio.Event()
        self._shown_priority = 0
        self._errors: dict[str, tuple[float | None, int]] = {}   # action kind -> (logged, held)

    # ------------------------------------------------------------------ setup / teardown
    def setup(self) -> None:
        """Resolve addresses, create the (down) vMAC, open the sender, build the router."""
        from vmacd.linux.link import PacketSender

        cfg = self.cfg
        fam = cfg.family
        primary = self.w.vmacs.primary_address(self.parent_index, fam)
        if primary is None:
            what = "an IPv4 address" if fam == 4 else "an IPv6 link-local address"
            raise RuntimeError(f"instance {cfg.name}: interface {cfg.interface} has no {what} "
                               "to send advertisements from")
        self.primary = ipaddress.ip_address(primary)
        if cfg.vmac:
            self.vmac = self.w.vmacs.create(cfg.name, cfg.interface, cfg.vrid, fam,
                                            mode=cfg.vmac_mode, ifname=self.vmac_name())
            self.send_index = self.vmac.ifindex
            self.src_mac = self.vmac.mac
            if self.w.guardian is not None:
                self.w.guardian.own(self.vmac.ifindex)
        else:                               # vmac = false: the parent's own MAC
            self.src_mac = self._parent_mac()
        self.sender = PacketSender(self.send_index)
        self.w.vmacs.prepare_vips(self._vip_strings())
        self.router = VirtualRouter(self.params())
        self.metrics.state(self.router.state.value)
        self._shown_priority = self.router.effective_priority
        self.metrics.priority(cfg.priority, self._shown_priority)
        if self.filters_vips:
            # RFC 9568 §6.4.3-9: a non-owner master with accept = false takes no packets for
            # the VIPs (ARP and NS/NA still pass). The rule is installed once: while backup the
            # VIPs are not on the box, so it costs nothing at transition time.
            self.w.accept_filter.add(cfg.name, self._vip_strings())
        owned = self.owned_addresses()
        if owned:
            self.w.owner_filter.add(cfg.name, cfg.interface, self._parent_mac(), owned)

    def _parent_mac(self) -> str:
        return netifaces.ifaddresses(self.cfg.interface)[netifaces.AF_LINK][0]["addr"]

    def owned_addresses(self) -> list[str]:
        """VIPs that are the parent's own addresses: the address owner's (priority 255). Only
        the vMAC may answer or announce them (linux.nft.OwnerFilter)."""
        if not (self.cfg.owner and self.cfg.vmac and self.w.owner_filter is not None):
            return []
        af = netifaces.AF_INET if self.cfg.family == 4 else netifaces.AF_INET6
        own = {ipaddress.ip_address(a["addr"].split("%", 1)[0])
               for a in netifaces.ifaddresses(self.cfg.interface).get(af, [])}
        return [str(v.ip) for v in self.cfg.virtual_ips if v.ip in own]

    @property
    def filters_vips(self) -> bool:
        return not self.cfg.accept and not self.cfg.owner and self.w.accept_filter is not None

    def vmac_name(self) -> str:
        """Device name `vm<parent ifindex>.<vrid>.<4|6>`: unique per LAN, VRID and family."""
        return f"vm{self.parent_index}.{self.cfg.vrid}.{self.cfg.family}"[:15]

    def params(self) -> RouterParams:
        c = self.cfg
        return RouterParams(
            vrid=c.vrid, primary=self.primary, vips=tuple(v.ip for v in c.virtual_ips),
            version=c.version, priority=c.priority, interval_cs=c.advert_interval_cs,
            preempt=c.preempt, preempt_delay=c.preempt_delay, accept=c.accept,
            startup_delay=c.startup_delay, garp_repeat=c.garp_repeat,
            graceful_handover=c.graceful_handover, name=c.name)

    def close(self) -> None:
        """Forget timers and delete what this instance created (macvlan, VIPs, nft rules)."""
        self._cancel()
        if self._refresh:
            self._refresh.cancel()
        if self.vmac is not None:
            self.w.vmacs.delete(self.vmac)
            if self.w.guardian is not None:
                self.w.guardian.disown(self.vmac.ifindex)
        elif self.router is not None and self.router.holds_vips:
            self.w.vmacs.release(self.parent_index, self._vip_strings())
        if self.sender is not None:
            self.sender.close()
        if self.filters_vips:
            self.w.accept_filter.remove(self.cfg.name)
        if self.w.owner_filter is not None:
            self.w.owner_filter.remove(self.cfg.name)
        self.w.metrics.remove_instance(self.cfg.name)

    # ------------------------------------------------------------------ inputs
    def handle(self, event: object) -> None:
        now = self.w.loop.time()
        self.execute(self.router.handle(event, now))

    def refresh_primary(self, found: str | None) -> None:
        """The parent's addresses changed and `found` is now its primary (IPv4) / link-local
        (IPv6): follow it, the source of our advertisements; None is a fault until one appears."""
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
        self._frames.clear()                 # cached adverts carry the old source address
        self.handle(PrimaryChanged(addr))

    def on_advert(self, adv: wire.Advertisement) -> None:
        now = self.w.loop.time()
        was_backup = self.router.state is State.BACKUP
        actions = self.router.handle(AdvertReceived(adv), now)
        if not any(type(a) is Drop for a in actions):     # a refused advert only counts a drop
            self.metrics.advert_received()
            if adv.version == 3 and adv.family == 4:
                self.metrics.checksum_variant(adv.checksum)
            self._late_check(adv, now, was_backup)
        self.execute(actions)

    def _late_check(self, adv: wire.Advertisement, now: float, was_backup: bool) -> None:
        """Heartbeat warntime: the master's adverts came further apart than warn_after."""
        if not was_backup or adv.priority == 0:
            self._last_advert = None
            return
        last, self._last_advert = self._last_advert, now
        if last is None:
            return
        gap = now - last
        self.metrics.interval(gap)
        if self.cfg.warn_after and gap > self.cfg.warn_after:
            self.metrics.late()
            log.warning("%s: advertisement late: %.0f ms since the previous one (warn_after %.0f ms)",
                        self.cfg.name, gap * 1000, self.cfg.warn_after * 1000,
                        extra={"instance": self.cfg.name, "gap_ms": round(gap * 1000, 1)})

    def _on_timer(self) -> None:
        self._timer = None
        now = self.w.loop.time()
        deadline = self.router.get_timer()
        if deadline is None:
            return
        if deadline > now:                  # it moved later since the handle was set: re-arm
            self._set_timer(deadline)
            return
        self.execute(self.router.handle_timer(now))

    # ------------------------------------------------------------------ actions
    def execute(self, actions: list[Action]) -> None:
        changed = False
        for action in actions:
            try:
                changed |= self._do(action)
            except Exception as exc:  # noqa: BLE001 - one failing action must not stop the others
                self._action_failed(action, exc)
        self._arm()
        prio = self.router.effective_priority
        if prio != self._shown_priority:         # tracking moved it (cheap check, hot path)
            self._shown_priority = prio
            self.metrics.priority(self.cfg.priority, prio)
        if changed:
            self.w.on_change(self)

    def _action_failed(self, action: Action, exc: Exception) -> None:
        """Log a failing action, at most once per ERROR_LOG_EVERY seconds per kind of action
        (a failing SendAdvert would otherwise log at the advertisement rate)."""
        kind, now = type(action).__name__, self.w.loop.time()
        last, suppressed = self._errors.get(kind, (None, 0))
        if last is not None and now - last < ERROR_LOG_EVERY:
            self._errors[kind] = (last, suppressed + 1)
            return
        self._errors[kind] = (now, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.error("%s: %s failed: %s%s", self.cfg.name, kind, exc, more,
                  extra={"instance": self.cfg.name, "suppressed": suppressed})

    def _do(self, a: Action) -> bool:
        kind = type(a)
        if kind is SendAdvert:
            self.send_advert(a.priority)
        elif kind is ClaimVips:
            self._claim()
        elif kind is ReleaseVips:
            self._release()
        elif kind is Announce:
            self._announce(a.repeat)          # after ClaimVips: §8.1.2-5, no GARP before the VIP
        elif kind is StateChanged:
            self._state_changed(a)
            return True
        elif kind is RunResources:
            self._resources(a.what)
        elif kind is Notify:
            self._notify(a.state, a.priority)
        elif kind is Drop:
            self.metrics.dropped(a.reason)
        elif kind is Log:
            extra = {"instance": self.cfg.name, "kind": a.kind, "suppressed": a.suppressed}
            log.log(_LOG_LEVELS.get(a.level, logging.INFO), "%s: %s", self.cfg.name, a.message,
                    extra=extra)
        elif kind is MasterSeen:
            self.metrics.master_seen(None if a.src is None else str(a.src))
        elif kind is DualMaster:
            self.metrics.dual_master()
        elif kind is Stopped:
            self.stopped.set()
        return False

    def send_advert(self, priority: int) -> None:
        if self.cfg.unicast_peers:
            self._send_unicast(priority)
            return
        frame = self._frames.get(priority) or self._build_frame(priority)
        err = self.sender.send(frame)
        if err:
            log.warning("%s: advertisement not sent: %s", self.cfg.name, err,
                        extra={"instance": self.cfg.name})
            return
        self.metrics.advert_sent()

    def _advert(self, priority: int) -> tuple[wire.Advertisement, dict]:
        """The advertisement to send and the codec options (a fresh counter for hmac/AH)."""
        c = self.cfg
        adv = wire.Advertisement(version=c.version, vrid=c.vrid, priority=priority,
                                 interval_cs=c.advert_interval_cs,
                                 addresses=tuple(v.ip for v in c.virtual_ips))
        kw: dict = {"pseudo_header": c.v3_checksum_pseudoheader, "auth": self.auth}
        if self.auth.type == "hmac-sha256":
            self._counter += 1
            kw["counter"] = self._counter
        elif self.auth.type == "ah":
            self._ah_seq = self._ah_seq % core_auth.AH_SEQ_MAX + 1
            kw["counter"] = self._ah_seq
        return adv, kw

    def _build_frame(self, priority: int) -> bytes:
        """Ethernet frame from the vMAC to the VRRP group; cached unless a counter is in it."""
        adv, kw = self._advert(priority)
        group = wire.VRRP_GROUP_V4 if self.cfg.family == 4 else wire.VRRP_GROUP_V6
        frame = wire.build_frame(self.src_mac,
                                 wire.build_ip_packet(adv, src=self.primary, dst=group, **kw))
        if "counter" not in kw:
            self._frames[priority] = frame
        return frame

    def _send_unicast(self, priority: int) -> None:
        """unicast_peers (off-RFC, SPEC §3): one raw-socket datagram per peer, TTL 255."""
        adv, kw = self._advert(priority)
        for peer in self.cfg.unicast_peers:
            payload = wire.encode(adv, src=self.primary, dst=peer, **kw)
            if self.w.unicast_send(self.cfg.family, payload, str(peer), self.parent_index):
                self.metrics.advert_sent()

    def _vip_strings(self) -> list[str]:
        return [str(v) for v in self.cfg.virtual_ips]

    def _claim(self) -> None:
        """Bring the vMAC up and add the VIPs before anything leaves the vMAC.

        The first frame from the vMAC (the takeover advert) moves the switch's FDB entry to this
        port; the VIPs must already be here then, or the packets it attracts are lost. Sending
        the advert first would gain a millisecond on a crash takeover and lose packets on every
        make-before-break handover (measured: 1-3 of 450 probes at 5 ms)."""
        target = self.vmac if self.vmac is not None else self.parent_index
        if self.vmac is None and self.w.guardian is not None:
            for vip in self._vip_strings():      # vmac = false: the guardian removes them
                self.w.guardian.vip(self.parent_index, vip)
        self.w.vmacs.claim(target, self._vip_strings())
        if self.cfg.garp_refresh:
            self._schedule_refresh()

    def _release(self) -> None:
        if self._refresh:
            self._refresh.cancel()
            self._refresh = None
        if self.vmac is not None:
            self.w.vmacs.release(self.vmac)
        else:                               # only ours: other instances share the parent
            self.w.vmacs.release(self.parent_index, self._vip_strings())
        if self.vmac is None and self.w.guardian is not None:
            for vip in self._vip_strings():
                self.w.guardian.unvip(self.parent_index, vip)

    def _announce(self, repeat: int) -> None:
        frames = self.announce_frames()
        for i in range(max(1, repeat)):
            if i == 0:
                self._send_frames(frames)
            else:
                self.w.loop.call_later(i * ANNOUNCE_SPACING, self._send_frames, frames)

    def announce_frames(self) -> list[bytes]:
        """One gratuitous ARP / unsolicited NA per VIP, from the vMAC (RFC 9568 §6.4.2)."""
        vips = [v.ip for v in self.cfg.virtual_ips]
        if self.cfg.family == 4:
            return [l2.garp_frame(self.src_mac, vip) for vip in vips]
        return [l2.unsolicited_na_frame(self.src_mac, self.primary, vip) for vip in vips]

    def _send_frames(self, frames: list[bytes]) -> None:
        if self.router is None or not self.router.holds_vips:
            return                    # lost mastership before a repeat was due
        sent = sum(1 for f in frames if not self.sender.send(f))
        self.metrics.garp_sent(sent)

    def _schedule_refresh(self) -> None:
        def refresh() -> None:
            self._refresh = None
            if self.router.holds_vips:
                self._send_frames(self.announce_frames())
                self._schedule_refresh()

        self._refresh = self.w.loop.call_later(self.cfg.garp_refresh, refresh)

    def _state_changed(self, a: StateChanged) -> None:
        self.metrics.transition(a.old, a.new, self._wall_offset + a.time)
        self.metrics.state(a.new)
        self.metrics.priority(self.cfg.priority, self.router.effective_priority)
        log.info("%s: %s -> %s (%s)", self.cfg.name, a.old, a.new, a.reason,
                 extra={"instance": self.cfg.name, "from": a.old, "to": a.new, "reason": a.reason})

    def _resources(self, what: str) -> None:
        res = self.cfg.resources if what == "start" else tuple(reversed(self.cfg.resources))
        for r in res:
            argv = r.start if what == "start" else r.stop
            self.w.procs.submit(self.cfg.name, list(argv), r.timeout,
                                self._resource_done(r.name, what))

    def _resource_done(self, name: str, what: str) -> Callable[[object], None]:
        def done(result) -> None:          # linux.procs.Result
            if result.ok:
                return
            detail = result.error or f"exit status {result.returncode}"
            log.error("%s: resource %s %s failed: %s", self.cfg.name, name, what, detail,
                      extra={"instance": self.cfg.name, "resource": name})
            if what == "start":     # Heartbeat: a resource that cannot start releases the group
                self.handle(TrackChanged(f"resource:{name}", False, 0))
        return done

    def clear_resource_faults(self) -> None:
        """The operator took the box out of maintenance: failed resources may be tried again."""
        failed = [t.name for t in self.router.tracking.states
                  if t.name.startswith("resource:") and not t.up]
        for name in failed:
            self.handle(TrackChanged(name, True, 0))

    def _notify(self, state: str, priority: int) -> None:
        script = self.cfg.notify or self.w.notify_script
        if not script:
            return
        word = "STOP" if state == "stopped" else state.upper()      # keepalived's words
        argv = [script, "INSTANCE", self.cfg.name, word, str(priority)]
        self.w.procs.submit(self.cfg.name, argv, NOTIFY_TIMEOUT, self._notify_done)

    def _notify_done(self, result) -> None:
        if not result.ok:
            log.warning("%s: notify script failed: %s", self.cfg.name,
                        result.error or f"exit status {result.returncode}",
                        extra={"instance": self.cfg.name})

    # ------------------------------------------------------------------ timers
    def _arm(self) -> None:
        """Follow router.get_timer() with one loop handle.

        A backup's Master_Down deadline moves later with every advertisement; cancelling and
        re-creating the handle each time would cost more than the rest of the receive path. A
        handle that fires too early is harmless: _on_timer re-checks the deadline and re-arms.
        Only an earlier (or first) deadline replaces the handle.
        """
        deadline = self.router.get_timer()
        if deadline is None:
            self._cancel()
        elif self._timer is None or deadline < self._timer.when():
            self._cancel()
            self._set_timer(deadline)

    def _set_timer(self, deadline: float) -> None:
        self._timer = self.w.loop.call_at(deadline, self._on_timer)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        snap = self.router.snapshot()
        now, deadline = self.w.loop.time(), self.router.get_timer()
        ms = snap["master_seen"]
        master = None
        if self.router.state is State.MASTER:
            master = {"src": str(self.primary), "priority": snap["effective_priority"],
                      "interval_ms": self.cfg.advert_interval_cs * 10}
        elif ms is not None:
            master = {"src": ms["src"], "priority": ms["priority"],
                      "interval_ms": ms["interval_cs"] * 10}
        last = snap["last_transition"]
        since = None if last is None else self._wall_offset + last["time"]
        return {
            "name": self.cfg.name, "vrid": self.cfg.vrid, "interface": self.cfg.interface,
            "family": self.cfg.family, "version": self.cfg.version, "state": snap["state"],
            "priority": self.cfg.priority, "effective_priority": snap["effective_priority"],
            "vmac": self.src_mac if self.vmac is not None else None,
            "vmac_ifname": None if self.vmac is None else self.vmac.ifname,
            "vips": self._vip_strings(), "master": master,
            "timers": {
                "adver_interval_ms": self.cfg.advert_interval_cs * 10,
                "master_adver_interval_ms": snap["master_adver_interval_cs"] * 10,
                "master_down_interval_ms": round(snap["master_down_interval_cs"] * 10, 2),
                "skew_ms": round(snap["skew_time_cs"] * 10, 2),
                "next_timer_in_ms": None if deadline is None
                else round((deadline - now) * 1000, 1)},
            "since": since, "maintenance": snap["maintenance"], "faults": snap["faults"],
            "trackers": {t.name: t.up for t in self.router.tracking.states},
        }

    def history(self) -> list[dict]:
        return [{"time": self._wall_offset + t.time, "instance": self.cfg.name,
                 "from": t.old, "to": t.new, "reason": t.reason} for t in self.router.history]
