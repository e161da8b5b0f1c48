"""The per-VRID VRRP state machine (RFC 9568 §6.4; RFC 3768 §6.4 for v2). Sans-I/O.

`VirtualRouter(params)` never reads a clock and never touches the box. Its runner drives it:

    actions = router.handle(event, now)        # an input from events.py
    actions = router.handle_timer(now)         # when now >= router.get_timer()
    router.repeat(now)                         # the last accepted advert arrived again
    loop.call_at(router.get_timer(), ...)      # re-arm after every call (None = no timer)

and executes the returned actions in order. `now` is float seconds of a monotonic clock.

States: init, backup, master (RFC "Active"), fault, stopped. Everything that decides a transition
lives in this file: `EVENT_HANDLERS` maps (state, input type) to the handler function,
`TRANSITIONS` lists the legal (from, to) edges, `_enter`/`_exit` hold the entry and exit actions.
An input with no row raises LocalProtocolError and changes nothing.

Timers (RFC 9568 §6.2): Adver_Timer runs only in master, Master_Down_Timer only in backup; the
handover bound only while a master is leaving; the failure hold while a resource failure keeps
the router out of mastership. Durations come from core/timers.py (exact centiseconds, converted
to seconds once when a deadline is armed).

vmacd's rules beyond RFC 9568 §6.4 are documented in docs/architecture.md ("The state machine")
and at each handler: fault, startup_delay, preempt_delay, maintenance, make-before-break
handover, resource failures, the address owner's conflicts, v2 interval mismatches, dual masters.
"""
from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from vmacd.core import timers
from vmacd.core.events import (
    Action,
    AdvertReceived,
    Announce,
    ClaimVips,
    ClearFailures,
    Drop,
    DualMaster,
    HandoverDone,
    LinkChanged,
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
    SyncGroupChanged,
    TrackChanged,
    TrackRemoved,
)
from vmacd.core.groups import Directive, MemberView, Tracking, effective_priority
from vmacd.core.params import RouterParams
from vmacd.core.proto import Advertisement, IPAddress
from vmacd.core.ratelimit import RateLimiter


class State(str, enum.Enum):
    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"
    FAULT = "fault"
    STOPPED = "stopped"


class LocalProtocolError(RuntimeError):
    """The caller drove the state machine wrongly (our bug, not the peer's). State is unchanged."""


I, B, M, F, S = State.INIT, State.BACKUP, State.MASTER, State.FAULT, State.STOPPED

#: Legal transitions. Anything else is a bug and raises.
TRANSITIONS: frozenset[tuple[State, State]] = frozenset({
    (I, B), (I, M), (I, F), (I, S),     # Startup (§6.4.1) or Shutdown before Startup
    (B, M),                             # Master_Down_Timer fired (§6.4.2)
    (B, F), (B, S),                     # fault; Shutdown (§6.4.2)
    (M, B),                             # higher priority heard (§6.4.3), maintenance, hold, failure
    (M, F), (M, S),                     # fault; Shutdown (§6.4.3)
    (F, B), (F, M), (F, S),             # recovery (owner -> master); Shutdown
    (S, B), (S, M), (S, F),             # Startup again after a stop
})

#: Why a master is leaving: a stop, the operator's drain, a sync-group hold, a resource failure.
LEAVE_STOP, LEAVE_DRAIN, LEAVE_HOLD, LEAVE_FAILURE = "stop", "drain", "hold", "failure"


@dataclass(frozen=True)
class MasterInfo:
    """The master a backup last accepted: its source, priority and interval (cs), since when."""

    src: IPAddress | None
    priority: int
    interval_cs: int
    time: float


@dataclass(frozen=True)
class Transition:
    """One history entry: at `time` (s) the state went `old` -> `new` because of `reason`."""

    time: float
    old: str
    new: str
    reason: str


def _addr_int(a: IPAddress | None) -> int:
    """Address as an unsigned integer in network byte order (the §6.4.3 tie-break)."""
    return int(a) if a is not None else -1


class VirtualRouter:
    """One VRRP virtual router (one VRID, one family, one interface). See module docstring."""

    def __init__(self, params: RouterParams) -> None:
        self.state = State.INIT
        self.history: collections.deque[Transition] = collections.deque(maxlen=params.history_size)
        self.master_seen: MasterInfo | None = None
        self.tracking = Tracking()
        self.link_up = True
        self.has_primary = True                  # the interface has an address to send from
        self.maintenance = False
        self.failed: dict[str, tuple[str, float | None]] = {}   # resource -> (op, hold until)
        self.group_directive = Directive()
        self._adver_at: float | None = None      # Adver_Timer deadline (master)
        self._down_at: float | None = None       # Master_Down_Timer deadline (backup)
        self._handover_at: float | None = None   # graceful handover bound (leaving master)
        self._hold_at: float | None = None       # earliest end of a resource-failure hold
        self._leaving: tuple[State, str, str] | None = None   # (target, reason, LEAVE_*)
        self._stopping = False                   # stop_before_leave: waiting for the resources
        self._drain_force = False
        self._startup_until = 0.0
        self._lower_since: float | None = None   # preempt_delay: first lower advert of a run
        self._preparing = False                  # PrepareTakeover sent for this run
        self._announced_at: float | None = None  # last re-announce while answering (§6.4.3-14)
        self._owner_src: tuple[IPAddress | None, float] | None = None
        self._rival: list | None = None          # [src, first heard, counted] of another master
        self._master_entries: collections.deque[float] = collections.deque(maxlen=8)
        self._logs = RateLimiter(params.log_interval)
        self._repeat_ok = False                  # repeat() may stand for the last accepted advert
        self._eff_for: Tracking | None = None    # effective_priority cache (Tracking is frozen,
        self._eff = params.priority              # so identity tells when to recompute)
        self._mdi_key: tuple[int, int] | None = None   # (priority, interval) of _mdi_s
        self._mdi_s = 0.0
        self._set_params(params)
        self.master_adver_interval_cs = params.interval_cs  # §6.1 Master_Adver_Interval

    def _set_params(self, params: RouterParams) -> None:
        self.params = params
        self._vipset = frozenset(params.vips)
        self._interval_sec = timers.seconds(params.interval_cs)   # Advertisement_Interval, s
        self._adverts: dict[int, SendAdvert] = {}                 # priority -> action (frozen)
        self._eff_for = None
        self._mdi_key = None

    # ------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------

    @property
    def effective_priority(self) -> int:
        """Priority in force (tracking applied, clamped 1..254; owner 255), groups.py."""
        if self.tracking is not self._eff_for:
            self._eff_for = self.tracking
            self._eff = effective_priority(self.params.priority, self.tracking)
        return self._eff

    @property
    def shown_priority(self) -> int:
        """The priority status and metrics show: 0 while drained or leaving, as advertised."""
        if self.maintenance or self._leaving is not None:
            return 0
        return self.effective_priority

    @property
    def leaving(self) -> bool:
        """True while a master has begun to leave and still holds its VIPs (make-before-break)."""
        return self._leaving is not None

    @property
    def holds_vips(self) -> bool:
        """The daemon should have the vMAC up and the VIPs added exactly while this is True."""
        return self.state is State.MASTER

    @property
    def repeat_ok(self) -> bool:
        """The last handled advert was accepted by a backup: the same bytes again may go through
        repeat(now) instead of decode + handle."""
        return self._repeat_ok

    def handle(self, event: object, now: float) -> list[Action]:
        """Process one input at time `now` (s); return the actions to execute, in order."""
        handler = EVENT_HANDLERS.get((self.state, type(event)))
        if handler is None:
            raise LocalProtocolError(f"{type(event).__name__} is not valid in state {self.state.value}")
        self._repeat_ok = False
        return handler(self, event, now)

    def repeat(self, now: float) -> bool:
        """The advert accepted last (§6.4.2-13) arrived again, byte for byte, from the same
        sender: restart Master_Down_Timer as its full handling would. False (nothing done) when
        that shortcut does not apply; the caller then handles the advert in full."""
        if not self._repeat_ok:
            return False
        self._down_at = max(now + self._mdi_s, self._startup_until)
        return True

    def get_timer(self) -> float | None:
        """The earliest armed deadline (absolute seconds), or None when no timer runs."""
        armed = [t for t in (self._adver_at, self._down_at, self._handover_at, self._hold_at)
                 if t is not None]
        return min(armed) if armed else None

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline that is due at `now`. Calling early is harmless (returns [])."""
        self._repeat_ok = False
        out: list[Action] = []
        for _ in range(5):  # a firing can arm a new, later deadline; never loops on the same one
            if self._handover_at is not None and now >= self._handover_at:
                self._handover_at = None
                out += self._handover_expired(now)
            elif self._adver_at is not None and now >= self._adver_at:
                # §6.4.3-11, keeping the rhythm: the next deadline counts from this one, not
                # from a late callback, so delays do not add up; after a stall (more than one
                # interval late) it restarts from now instead of sending a burst
                nxt = self._adver_at + self._interval_sec
                self._adver_at = nxt if nxt > now else now + self._interval_sec
                out.append(self._advert(self.effective_priority))
            elif self._down_at is not None and now >= self._down_at:
                out += self._transition(State.MASTER, "master down timer expired", now)  # §6.4.2-7
            elif self._hold_at is not None and now >= self._hold_at:
                out += self._hold_expired(now)
            else:
                break
        return out

    def group_view(self) -> MemberView:
        """This member's own condition, for groups.SyncGroup.directives()."""
        master = self.master_seen
        beaten = self.state is State.BACKUP and (
            self.maintenance or bool(self.failed)
            or (master is not None and master.priority > 0
                and not self._would_preempt(master.priority, hold=False)))
        return MemberView(own_fault=bool(self._own_faults()), beaten=beaten,
                          active=self.state not in (State.INIT, State.STOPPED))

    def snapshot(self) -> dict[str, object]:
        """Everything the status API shows. Equal snapshots mean nothing changed."""
        p, ms = self.params, self.master_seen
        return {
            "name": p.name, "vrid": p.vrid, "family": p.family, "version": p.version,
            "state": self.state.value, "leaving": self.leaving,
            "priority": p.priority, "effective_priority": self.shown_priority, "owner": p.owner,
            "maintenance": self.maintenance, "link_up": self.link_up,
            "faults": list(self._all_faults()), "hold": self.group_directive.hold,
            "failed": {name: {"op": op, "until": until} for name, (op, until) in self.failed.items()},
            "master_seen": None if ms is None else {
                "src": str(ms.src) if ms.src is not None else None, "priority": ms.priority,
                "interval_cs": ms.interval_cs, "time": ms.time},
            "master_adver_interval_cs": self.master_adver_interval_cs,
            "skew_time_cs": float(self._skew_cs()),
            "master_down_interval_cs": float(self._mdi_cs()),
            "timers": {"adver": self._adver_at, "master_down": self._down_at,
                       "handover": self._handover_at, "hold": self._hold_at},
            "startup_until": self._startup_until,
            "preempt_lower_since": self._lower_since,
            "last_transition": None if not self.history else vars(self.history[-1]).copy(),
        }

    # ------------------------------------------------------------------------------------------
    # Timer arithmetic
    # ------------------------------------------------------------------------------------------

    def _skew_cs(self, priority: int | None = None):
        prio = self.effective_priority if priority is None else priority
        return timers.skew_time_cs(prio, self.master_adver_interval_cs, self.params.version)

    def _mdi_cs(self):
        return timers.master_down_interval_cs(self.effective_priority,
                                              self.master_adver_interval_cs, self.params.version)

    def _mdi_seconds(self) -> float:
        """Master_Down_Interval in seconds, recomputed only when priority or interval changed
        (the receive path arms it for every advert)."""
        key = (self.effective_priority, self.master_adver_interval_cs)
        if key != self._mdi_key:
            self._mdi_key = key
            self._mdi_s = timers.seconds(self._mdi_cs())
        return self._mdi_s

    @property
    def _may_claim(self) -> bool:
        """Neither drained nor held out by a resource failure."""
        return not self.maintenance and not self.failed

    def _arm_down(self, now: float, cs) -> None:
        """Arm Master_Down_Timer `cs` from now, never before startup_until; none while the
        router may not claim (maintenance, resource failure)."""
        self._down_at = (max(now + timers.seconds(cs), self._startup_until) if self._may_claim
                         else None)

    # ------------------------------------------------------------------------------------------
    # Transitions: the one choke point, with entry / exit actions
    # ------------------------------------------------------------------------------------------

    def _transition(self, new: State, reason: str, now: float) -> list[Action]:
        old = self.state
        if (old, new) not in TRANSITIONS:
            raise LocalProtocolError(f"illegal transition {old.value} -> {new.value} ({reason})")
        out: list[Action] = self._exit(old)
        self.state = new
        self._adver_at = self._down_at = self._handover_at = None     # §6.2-1: re-armed below
        self._leaving = None
        self._stopping = False
        self._lower_since = None
        self._preparing = False
        self._rival = None
        self._repeat_ok = False
        self.history.append(Transition(now, old.value, new.value, reason))
        out.insert(0, StateChanged(old.value, new.value, reason, now))
        out += self._enter(new, now)
        return out

    def _exit(self, old: State) -> list[Action]:
        if old is not State.MASTER:
            return []
        p = self.params
        return [ReleaseVips(p.vrid, p.family, p.vips), RunResources("stop")]

    def _enter(self, new: State, now: float) -> list[Action]:
        p = self.params
        out: list[Action] = []
        if new is State.MASTER:
            self._adver_at = now + self._interval_sec                      # §6.4.1-5, §6.4.2-11
            self.master_seen = None
            out = [ClaimVips(p.vrid, p.family, p.vips), self._advert(self.effective_priority),
                   Announce(p.vrid, p.family, p.vips, p.garp_repeat), RunResources("start")]
            out += self._check_flapping(now)
        elif new is State.BACKUP:
            self._arm_down(now, self._mdi_cs())                            # §6.4.1-6
        if new is State.FAULT or new is State.STOPPED:
            self.master_seen = None
        out.append(Notify(new.value, self.effective_priority))
        return out

    def _advert(self, priority: int) -> SendAdvert:
        action = self._adverts.get(priority)
        if action is None:
            p = self.params
            action = self._adverts[priority] = SendAdvert(p.vrid, p.version, p.family, priority,
                                                          p.interval_cs, p.vips)
        return action

    def _check_flapping(self, now: float) -> list[Action]:
        """RFC 9568 §2.5: 3 entries into master within 10 Master_Down_Intervals -> warn."""
        self._master_entries.append(now)
        window = 10 * timers.seconds(self._mdi_cs())
        recent = [t for t in self._master_entries if now - t <= window]
        if len(recent) >= 3:
            return self._log("warning", "flapping", now,
                             f"became master {len(recent)} times in {window:.2f} s")
        return []

    def _log(self, level: str, kind: str, now: float, message: str) -> list[Action]:
        suppressed = self._logs.allow(kind, now)
        if suppressed is None:
            return []
        return [Log(level, kind, f"vrid {self.params.vrid}: {message}", suppressed)]

    # ------------------------------------------------------------------------------------------
    # Startup, Shutdown, leaving mastership (make-before-break)
    # ------------------------------------------------------------------------------------------

    def _on_startup(self, _ev: Startup, now: float) -> list[Action]:
        p = self.params
        self._startup_until = now + p.startup_delay
        self.master_adver_interval_cs = p.interval_cs                      # §6.4.1-6
        self.master_seen = None
        faults = self._all_faults()
        if faults:
            return self._transition(State.FAULT, "startup: " + ", ".join(faults), now)
        if p.owner and p.startup_delay == 0 and self._may_claim:
            return self._transition(State.MASTER, "startup: address owner", now)  # §6.4.1-2
        return self._transition(State.BACKUP, "startup", now)

    def _on_shutdown_idle(self, ev: Shutdown, now: float) -> list[Action]:
        """§6.4.2-6: a backup (or init/fault) cancels its timer, sends nothing, stops."""
        return self._transition(State.STOPPED, ev.reason, now) + [Stopped()]

    def _on_shutdown_master(self, ev: Shutdown, now: float) -> list[Action]:
        """§6.4.3-10: priority 0 then stop; make-before-break waits for the successor first."""
        if self._leaving is not None:                  # a drain or hold leave becomes a stop
            drained = self._leaving[2] == LEAVE_DRAIN
            self._leaving = (State.STOPPED, ev.reason, LEAVE_STOP)
            return [HandoverDone(False, f"stopping ({ev.reason})")] if drained else []
        return self._begin_leave(State.STOPPED, ev.reason, LEAVE_STOP, now)

    def _begin_leave(self, target: State, reason: str, kind: str, now: float) -> list[Action]:
        self._leaving = (target, reason, kind)
        if self.params.stop_before_leave:
            # exclusive resources (shared storage) are let go before anyone may take them over:
            # keep advertising until they are stopped, then hand over (ResourcesStopped)
            self._stopping = True
            return [RunResources("stop")] + self._log(
                "info", "handover", now, f"leaving master ({reason}): stopping resources first")
        return self._hand_over(now)

    def _hand_over(self, now: float) -> list[Action]:
        """Send priority 0; keep the VIPs until the successor is heard (or release at once)."""
        assert self._leaving is not None
        p = self.params
        out: list[Action] = [self._advert(0)]
        if p.graceful_handover == "rfc":
            return out + self._finish_leave(now, "released at once")
        self._adver_at = None                                              # §6.4.3-10
        self._handover_at = now + timers.seconds(timers.handover_bound_cs(p.interval_cs, p.version))
        return out + self._log("info", "handover", now,
                               f"leaving master ({self._leaving[1]}): priority 0 sent, keeping "
                               "VIPs until the successor is heard")

    def _on_resources_stopped(self, _ev: ResourcesStopped, now: float) -> list[Action]:
        if not self._stopping:
            return []
        self._stopping = False
        return self._hand_over(now)

    def _finish_leave(self, now: float, why: str) -> list[Action]:
        assert self._leaving is not None
        target, reason, kind = self._leaving
        out = self._transition(target, f"{reason}; {why}", now)
        if kind == LEAVE_DRAIN:
            out.append(HandoverDone(True, why))
        return out + ([Stopped()] if target is State.STOPPED else [])

    def _handover_expired(self, now: float) -> list[Action]:
        """No successor within the bound. A drain that would leave the VIP without a master is
        refused (unless forced): stay master and end the drain."""
        assert self._leaving is not None
        if self._leaving[2] == LEAVE_DRAIN and not self._drain_force:
            self._leaving = None
            self.maintenance = False
            self._adver_at = now + self._interval_sec
            why = ("no other router took over within the handover bound: maintenance refused, "
                   "still master (use --force to drain anyway)")
            restart = [RunResources("start")] if self.params.stop_before_leave else []
            return ([self._advert(self.effective_priority), *restart, HandoverDone(False, why)]
                    + self._log("warning", "handover", now, why))
        return self._finish_leave(now, "handover bound passed")

    # ------------------------------------------------------------------------------------------
    # Receiving advertisements (§7.1 meaning checks, §6.4.2, §6.4.3)
    # ------------------------------------------------------------------------------------------

    def _ignore(self, _ev: object, _now: float) -> list[Action]:
        return []

    def _screen(self, adv: Advertisement, now: float) -> list[Action] | None:
        """Checks the codec cannot make (they need the instance). A list = dropped; None = ok."""
        p = self.params
        reason = detail = ""
        if adv.vrid != p.vrid or adv.family != p.family:
            reason, detail = "vrid", f"advert for VRID {adv.vrid} IPv{adv.family}, not ours"
        elif adv.version != p.version:
            reason, detail = "version", f"VRRPv{adv.version} advert, instance runs v{p.version}"
        elif p.version == 2 and adv.interval_cs != p.interval_cs:
            reason, detail = "interval", f"v2 interval {adv.interval_cs} cs != {p.interval_cs} cs"
        elif adv.src is not None and adv.src == p.primary:
            reason, detail = "addresses", "advert from our own primary address"
        if not reason:
            return None
        return [Drop(reason, detail)] + self._log("info", "drop", now, f"dropped: {detail}")

    def _observe(self, adv: Advertisement, now: float) -> list[Action]:
        """Rate-limited logs about an accepted advert: §7.1-13/-16, §8.3.2-2/-4."""
        p, out = self.params, []
        if p.version == 3 and adv.interval_cs != p.interval_cs:
            out += self._log("warning", "interval-mismatch", now,
                             f"{adv.src} advertises {adv.interval_cs} cs, configured {p.interval_cs} cs")
        if adv.addresses != p.vips and set(adv.addresses) != self._vipset:
            out += self._log("warning", "address-mismatch", now,
                             f"{adv.src} advertises {[str(a) for a in adv.addresses]}")
        if adv.priority == 255:
            prev = self._owner_src
            if p.owner or (prev is not None and prev[0] != adv.src
                           and now - prev[1] <= timers.seconds(self._mdi_cs())):
                out += self._log("warning", "owner-conflict", now,
                                 f"more than one router advertises priority 255 ({adv.src})")
            self._owner_src = (adv.src, now)
        elif 0 < adv.priority == self.effective_priority:
            out += self._log("warning", "equal-priority", now,
                             f"{adv.src} advertises our priority {adv.priority}")
        return out

    def _would_preempt(self, priority: int, hold: bool) -> bool:
        """Would this backup discard an advert of `priority` (§6.4.2-14) and take over?"""
        p = self.params
        preempt = (p.preempt or p.owner) and not hold and self._may_claim
        return preempt and priority < self.effective_priority

    def _on_advert_backup(self, ev: AdvertReceived, now: float) -> list[Action]:
        adv = ev.adv
        dropped = self._screen(adv, now)
        if dropped is not None:
            return dropped
        out = self._observe(adv, now)
        if adv.priority == 0:                                              # §6.4.2-12
            if self._down_at is not None:
                self._arm_down(now, self._skew_cs())
                if not self._preparing:
                    self._preparing = True
                    out.append(PrepareTakeover(adv.src))
            return out
        if self._would_preempt(adv.priority, self.group_directive.hold):
            if not self._preparing:                  # the first of a run: get the service ready
                self._preparing = True
                out.append(PrepareTakeover(adv.src))
            if self.params.preempt_delay > 0:
                if self._lower_since is None:
                    self._lower_since = now
                if now < self._lower_since + self.params.preempt_delay:
                    return out + self._accept(adv, now)                   # preempt_delay
            return out                                                     # §6.4.2-14 discard
        self._lower_since = None
        self._preparing = False
        out += self._accept(adv, now)                                     # §6.4.2-13
        self._repeat_ok = True
        return out

    def _accept(self, adv: Advertisement, now: float) -> list[Action]:
        """§6.4.2-13: adopt the interval, recompute, restart Master_Down_Timer."""
        self.master_adver_interval_cs = adv.interval_cs
        self._down_at = max(now + self._mdi_seconds(), self._startup_until) if self._may_claim \
            else None
        old = self.master_seen
        if old is None or (old.src, old.priority, old.interval_cs) != (adv.src, adv.priority,
                                                                       adv.interval_cs):
            self.master_seen = MasterInfo(adv.src, adv.priority, adv.interval_cs, now)
            return [MasterSeen(adv.src, adv.priority, adv.interval_cs)]
        return []

    def _on_advert_master(self, ev: AdvertReceived, now: float) -> list[Action]:
        adv, p = ev.adv, self.params
        dropped = self._screen(adv, now)
        if dropped is not None:
            return dropped
        if p.owner and adv.priority == 255:                                # §7.1 erratum 8298
            return self._log("warning", "owner-conflict", now,
                             f"{adv.src} also advertises priority 255 for our VRID; ignored")
        mine = self.effective_priority
        beats_us = adv.priority > mine or (adv.priority == mine
                                           and _addr_int(adv.src) > _addr_int(p.primary))
        if self._leaving is not None:
            if adv.priority and (not self._stopping or beats_us):
                return self._finish_leave(now, f"successor {adv.src} heard")
            return []
        out = self._observe(adv, now)
        if adv.priority == 0:                                              # §6.4.3-12
            self._adver_at = now + self._interval_sec
            return out + [self._advert(self.effective_priority)]
        if beats_us:                                                       # §6.4.3-13
            why = "higher priority" if adv.priority > mine else "equal priority, higher address"
            out += self._transition(State.BACKUP, f"{why} from {adv.src} ({adv.priority})", now)
            self.master_adver_interval_cs = adv.interval_cs
            self._arm_down(now, self._mdi_cs())
            self.master_seen = MasterInfo(adv.src, adv.priority, adv.interval_cs, now)
            return out + [MasterSeen(adv.src, adv.priority, adv.interval_cs)]
        out += self._rival_heard(adv, now)
        out.append(self._advert(mine))                                     # §6.4.3-14
        if self._announced_at is None or now - self._announced_at >= self._interval_sec:
            self._announced_at = now
            out.append(Announce(p.vrid, p.family, p.vips, 1))
        return out

    def _rival_heard(self, adv: Advertisement, now: float) -> list[Action]:
        """A lower master that does not yield: counted once it advertises again at least half of
        its own interval after we first answered it (a preemption it obeys is not a conflict)."""
        rival = self._rival
        span = timers.seconds(adv.interval_cs)
        if rival is None or rival[0] != adv.src or now - rival[1] > 4 * span:
            self._rival = [adv.src, now, False]
            return []
        if rival[2] or now - rival[1] < span / 2:
            return []
        rival[2] = True
        return [DualMaster(adv.src, adv.priority)] + self._log(
            "warning", "dual-master", now,
            f"{adv.src} keeps advertising as master (priority {adv.priority}) beside us")

    # ------------------------------------------------------------------------------------------
    # Conditions: link, tracking, maintenance, sync group, resource failures, reload
    # ------------------------------------------------------------------------------------------

    def _own_faults(self) -> tuple[str, ...]:
        link = () if self.link_up else ("link down",)
        addr = () if self.has_primary else ("no address to advertise from",)
        return link + addr + tuple(f"track {n} down" for n in self.tracking.faults)

    def _all_faults(self) -> tuple[str, ...]:
        g = self.group_directive
        return self._own_faults() + ((g.reason or "sync group fault",) if g.fault else ())

    def _on_condition(self, ev: object, now: float) -> list[Action]:
        hold_began = False
        if isinstance(ev, LinkChanged):
            self.link_up = ev.up
        elif isinstance(ev, PrimaryChanged):
            self.has_primary = ev.address is not None
            if ev.address is not None:          # advertised from, and the §6.4.3-13 tie-break
                self._set_params(replace(self.params, primary=ev.address))
        elif isinstance(ev, TrackChanged):
            self.tracking = self.tracking.update(ev.name, ev.up, ev.weight)
        elif isinstance(ev, TrackRemoved):
            self.tracking = self.tracking.remove(ev.name)
        elif isinstance(ev, SyncGroupChanged):
            hold_began = ev.hold and not self.group_directive.hold
            self.group_directive = Directive(ev.fault, ev.hold, ev.reason)
        if self.state in (State.INIT, State.STOPPED):
            return []                                      # recorded; Startup consults them
        faults = self._all_faults()
        if faults and self.state is not State.FAULT:
            return self._enter_fault(", ".join(faults), now)
        if not faults and self.state is State.FAULT:
            if self.params.owner and self._may_claim and self.params.startup_delay == 0:
                return self._transition(State.MASTER, "recovered: address owner", now)
            return self._transition(State.BACKUP, "recovered", now)
        if hold_began and self.state is State.MASTER and not self.leaving:
            return self._begin_leave(State.BACKUP, ev.reason or "sync group hold", LEAVE_HOLD, now)
        return []

    def _enter_fault(self, reason: str, now: float) -> list[Action]:
        """A master sends one priority-0 advert (if its link is up) and releases at once."""
        if self.state is State.MASTER:
            if self._leaving is not None and self._leaving[0] is State.STOPPED:
                return self._finish_leave(now, f"fault: {reason}")
            out: list[Action] = []
            if self.link_up and (self._leaving is None or self._stopping):
                out.append(self._advert(0))
            return out + self._transition(State.FAULT, reason, now)
        return self._transition(State.FAULT, reason, now)

    def _on_maintenance(self, ev: Maintenance, now: float) -> list[Action]:
        if ev.on == self.maintenance:
            return [HandoverDone(True, f"maintenance already {'on' if ev.on else 'off'}")]
        if not ev.on:
            self.maintenance = False
            if self._leaving is not None and self._leaving[2] == LEAVE_DRAIN:
                return self._cancel_leave(now) + [HandoverDone(True, "maintenance off: still master")]
            if self.state is State.BACKUP:
                self._arm_down(now, self._mdi_cs())
            return [HandoverDone(True, "maintenance off")]
        ms = self.master_seen
        if self.state is State.BACKUP and not ev.force and (ms is None or ms.priority == 0):
            return [HandoverDone(False, f"no other router is heard for VRID {self.params.vrid}: "
                                        "draining would leave the VIP without a master (use --force)")]
        self.maintenance = True
        self._drain_force = ev.force
        if self.state is State.MASTER:
            if self._leaving is None:
                return self._begin_leave(State.BACKUP, "maintenance on", LEAVE_DRAIN, now)
            return [HandoverDone(True, "maintenance on: already leaving")]
        self._down_at = None                                              # never claims
        return [HandoverDone(True, "maintenance on")]

    def _cancel_leave(self, now: float) -> list[Action]:
        """An operator's drain was called off before the successor came: stay master."""
        if self._stopping:
            return []       # the resources are going down already: the leave goes on
        self._leaving = self._handover_at = None
        self._adver_at = now + self._interval_sec
        return [self._advert(self.effective_priority)]

    def _on_resource_failed(self, ev: ResourceFailed, now: float) -> list[Action]:
        """Heartbeat/Pacemaker: a failed resource takes the node out of mastership for `hold`
        seconds (0: until ClearFailures), so a service broken everywhere cannot ping-pong."""
        until = now + ev.hold if ev.hold > 0 else None
        self.failed[ev.resource] = (ev.op, until)
        self._rearm_hold()
        reason = f"resource {ev.resource} {ev.op} failed"
        if self.state is State.MASTER and self._leaving is None:
            return self._begin_leave(State.BACKUP, reason, LEAVE_FAILURE, now)
        if self.state is State.BACKUP:
            self._down_at = None
        return []

    def _rearm_hold(self) -> None:
        untils = [u for _op, u in self.failed.values() if u is not None]
        self._hold_at = min(untils) if untils else None

    def _hold_expired(self, now: float) -> list[Action]:
        self.failed = {n: (op, u) for n, (op, u) in self.failed.items() if u is None or u > now}
        self._rearm_hold()
        return self._failures_cleared(now, "failure_timeout passed")

    def _on_clear(self, _ev: ClearFailures, now: float) -> list[Action]:
        if not self.failed:
            return []
        self.failed = {}
        self._hold_at = None
        return self._failures_cleared(now, "cleared by the operator")

    def _failures_cleared(self, now: float, why: str) -> list[Action]:
        if self.failed:
            return []
        out = self._log("info", "failure-hold", now, f"resource failures forgotten ({why})")
        if self.state is State.BACKUP and self._may_claim:
            self._arm_down(now, self._mdi_cs())
        return out

    def _on_params(self, ev: ParamsChanged, now: float) -> list[Action]:
        """A reload changed what can change in place (same VRID, family, version, owner role):
        no transition; a master advertises the new values at once."""
        old, new = self.params, ev.params
        if (new.vrid, new.family, new.version, new.owner) != (old.vrid, old.family, old.version,
                                                              old.owner):
            raise LocalProtocolError("ParamsChanged cannot change VRID, family, version or owner")
        self._set_params(replace(new, primary=old.primary))
        if self.state is not State.MASTER or self._leaving is not None:
            return []
        out: list[Action] = []
        if new.vips != old.vips:
            out += [ClaimVips(new.vrid, new.family, new.vips),
                    Announce(new.vrid, new.family, new.vips, new.garp_repeat)]
        if (new.interval_cs, new.priority, new.vips) != (old.interval_cs, old.priority, old.vips):
            self._adver_at = now + self._interval_sec
            out.insert(0, self._advert(self.effective_priority))
        return out


Handler = Callable[[VirtualRouter, object, float], list[Action]]
_CONDITION: Handler = VirtualRouter._on_condition      # type: ignore[assignment]

#: (state, input type) -> handler. Rows not listed raise LocalProtocolError.
EVENT_HANDLERS: dict[tuple[State, type], Handler] = {
    (I, Startup): VirtualRouter._on_startup, (S, Startup): VirtualRouter._on_startup,
    (I, Shutdown): VirtualRouter._on_shutdown_idle, (F, Shutdown): VirtualRouter._on_shutdown_idle,
    (B, Shutdown): VirtualRouter._on_shutdown_idle, (M, Shutdown): VirtualRouter._on_shutdown_master,
    (B, AdvertReceived): VirtualRouter._on_advert_backup,
    (M, AdvertReceived): VirtualRouter._on_advert_master,
    # Initialize (§6.4.1) waits for Startup: adverts heard meanwhile are ignored; so in fault
    # (we do not take part) and stopped.
    (I, AdvertReceived): VirtualRouter._ignore, (F, AdvertReceived): VirtualRouter._ignore,
    (S, AdvertReceived): VirtualRouter._ignore,
    (M, ResourcesStopped): VirtualRouter._on_resources_stopped,
    **{(st, ev): _CONDITION for st in State
       for ev in (LinkChanged, PrimaryChanged, TrackChanged, TrackRemoved, SyncGroupChanged)},
    **{(st, Maintenance): VirtualRouter._on_maintenance for st in State},
    **{(st, ResourceFailed): VirtualRouter._on_resource_failed for st in State},
    **{(st, ClearFailures): VirtualRouter._on_clear for st in State},
    **{(st, ParamsChanged): VirtualRouter._on_params for st in State},
    **{(st, ResourcesStopped): VirtualRouter._ignore for st in (I, B, F, S)},
}
