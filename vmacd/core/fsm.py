"""The per-VRID VRRP state machine (RFC 9568 §6.4; RFC 3768 §6.4 for v2). Sans-I/O.

`VirtualRouter(params)` never reads a clock and never touches the box. Its runner drives it:

    actions = router.handle(event, now)        # an input from events.py
    actions = router.handle_timer(now)         # when now >= router.get_timer()
    router.repeat(now)                         # the last accepted advert arrived again
    loop.call_at(router.get_timer(), ...)      # re-arm after every call (None = no timer)

and executes the returned actions in order. `now` is float seconds of a monotonic clock.

States: init, backup, master (RFC "Active"), fault, stopped (states.py). `EVENT_HANDLERS` maps
(state, input type) to the handler function: those for adverts, Startup and Shutdown are here,
leaving mastership is in handover.py, the other conditions in conditions.py. `TRANSITIONS` lists
the legal (from, to) edges, `_enter`/`_exit` hold the entry and exit actions, `_transition` is the
one place the state changes. An input with no row raises LocalProtocolError and changes nothing.

Timers (RFC 9568 §6.2): Adver_Timer runs only in master, Master_Down_Timer only in backup; the
handover bound only while a master is leaving; the failure hold while a resource failure keeps
the router out of mastership; the resources' start while a master that preempted another waits
for it to let go of exclusive resources. Durations come from core/timers.py (exact centiseconds, converted
to seconds once when a deadline is armed).

vmacd's rules beyond RFC 9568 §6.4 are documented in docs/architecture.md ("The state machine")
and at each handler: fault, startup_delay, preempt_delay, maintenance, make-before-break
handover, resource failures, the address owner's conflicts, v2 interval mismatches, dual masters.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from vmacd.core import conditions, handover, timers
from vmacd.core.conditions import all_faults, own_faults
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
from vmacd.core.states import (
    LEAVE_DRAIN,
    LEAVE_PREEMPTED,
    LEAVE_STOP,
    TRANSITIONS,
    B,
    F,
    I,
    LocalProtocolError,
    Lower,
    M,
    MasterInfo,
    S,
    State,
    Transition,
)

__all__ = ["EVENT_HANDLERS", "LocalProtocolError", "RouterParams", "State", "VirtualRouter"]


@dataclass
class Rival:
    """A lower master heard while we are master: since when, and whether counted already."""

    src: IPAddress | None
    first: float
    counted: bool = False


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
        self._lower: Lower | None = None         # the lower master this backup will preempt
        self._awaiting: Lower | None = None      # the preempted master, until it lets go
        self._start_at: float | None = None      # exclusive resources start then at the latest
        self._drain_force = False
        self._startup_until = 0.0
        self._lower_since: float | None = None   # preempt_delay: first lower advert of a run
        self._preparing = False                  # PrepareTakeover sent for this run
        self._announced_at: float | None = None  # last re-announce while answering (§6.4.3-14)
        self._owner_src: tuple[IPAddress | None, float] | None = None
        self._rival: Rival | None = None         # another master that does not yield
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
    def serves(self) -> bool:
        """A master whose resources should run: not leaving, not waiting for a preempted master
        to let go of exclusive ones."""
        return self.state is State.MASTER and self._leaving is None and self._start_at is None

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
        if self.may_claim:          # as _accept: no Master_Down_Timer while drained or failed
            self._down_at = max(now + self._mdi_s, self._startup_until)
        return True

    def get_timer(self) -> float | None:
        """The earliest armed deadline (absolute seconds), or None when no timer runs."""
        if self._handover_at is None and self._hold_at is None and self._start_at is None:
            adver, down = self._adver_at, self._down_at      # the usual case: one of these
            return down if adver is None else adver if down is None else min(adver, down)
        armed = [t for t in (self._adver_at, self._down_at, self._handover_at, self._hold_at,
                             self._start_at) if t is not None]
        return min(armed)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline that is due at `now`. Calling early is harmless (returns [])."""
        self._repeat_ok = False
        out: list[Action] = []
        for _ in range(5):  # a firing can arm a new, later deadline; never loops on the same one
            if self._handover_at is not None and now >= self._handover_at:
                self._handover_at = None
                out += handover.handover_expired(self, now)
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
                out += conditions.hold_expired(self, now)
            elif self._start_at is not None and now >= self._start_at:
                out += handover.start_resources(self, now, "the preempted master fell silent")
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
        return MemberView(own_fault=bool(own_faults(self)), beaten=beaten,
                          active=self.state not in (State.INIT, State.STOPPED))

    def snapshot(self) -> dict[str, object]:
        """Everything the status API shows. Equal snapshots mean nothing changed."""
        p, ms = self.params, self.master_seen
        return {
            "name": p.name, "vrid": p.vrid, "family": p.family, "version": p.version,
            "state": self.state.value, "leaving": self.leaving,
            "priority": p.priority, "effective_priority": self.shown_priority, "owner": p.owner,
            "maintenance": self.maintenance, "link_up": self.link_up,
            "faults": list(all_faults(self)), "hold": self.group_directive.hold,
            "failed": {name: {"op": op, "until": until} for name, (op, until) in self.failed.items()},
            "master_seen": None if ms is None else {
                "src": str(ms.src) if ms.src is not None else None, "priority": ms.priority,
                "interval_cs": ms.interval_cs, "time": ms.time},
            "master_adver_interval_cs": self.master_adver_interval_cs,
            "skew_time_cs": float(self._skew_cs()),
            "master_down_interval_cs": float(self._mdi_cs()),
            "timers": {"adver": self._adver_at, "master_down": self._down_at,
                       "handover": self._handover_at, "hold": self._hold_at,
                       "resources_start": self._start_at},
            "startup_until": self._startup_until,
            "preempt_lower_since": self._lower_since,
            "last_transition": None if not self.history else vars(self.history[-1]).copy(),
        }

    # ------------------------------------------------------------------------------------------
    # Timer arithmetic
    # ------------------------------------------------------------------------------------------

    def _skew_cs(self, priority: int | None = None) -> Fraction:
        prio = self.effective_priority if priority is None else priority
        return timers.skew_time_cs(prio, self.master_adver_interval_cs, self.params.version)

    def _mdi_cs(self) -> Fraction:
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
    def may_claim(self) -> bool:
        """Neither drained nor held out by a resource failure."""
        return not self.maintenance and not self.failed

    def _arm_down(self, now: float, cs: Fraction | int) -> None:
        """Arm Master_Down_Timer `cs` from now, never before startup_until; none while the
        router may not claim (maintenance, resource failure)."""
        self._down_at = (max(now + timers.seconds(cs), self._startup_until) if self.may_claim
                         else None)

    # ------------------------------------------------------------------------------------------
    # Transitions: the one choke point, with entry / exit actions
    # ------------------------------------------------------------------------------------------

    def _transition(self, new: State, reason: str, now: float) -> list[Action]:
        old = self.state
        if (old, new) not in TRANSITIONS:
            raise LocalProtocolError(f"illegal transition {old.value} -> {new.value} ({reason})")
        out: list[Action] = self._exit(old)
        lower = self._lower
        self.state = new
        self._adver_at = self._down_at = self._handover_at = None     # §6.2-1: re-armed below
        self._leaving = self._lower = self._awaiting = self._start_at = None
        self._stopping = False
        self._lower_since = None
        self._preparing = False
        self._rival = None
        self._repeat_ok = False
        self.history.append(Transition(now, old.value, new.value, reason))
        out.insert(0, StateChanged(old.value, new.value, reason, now))
        out += self._enter(new, now, lower)
        return out

    def _exit(self, old: State) -> list[Action]:
        if old is not State.MASTER:
            return []
        p = self.params
        return [ReleaseVips(p.vrid, p.family, p.vips), RunResources("stop")]

    def _enter(self, new: State, now: float, lower: Lower | None) -> list[Action]:
        p = self.params
        out: list[Action] = []
        if new is State.MASTER:
            self._adver_at = now + self._interval_sec                      # §6.4.1-5, §6.4.2-11
            self.master_seen = None
            out = [ClaimVips(p.vrid, p.family, p.vips), self._advert(self.effective_priority),
                   Announce(p.vrid, p.family, p.vips, p.garp_repeat)]
            out += handover.resources_on_entry(self, lower, now)
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
    # Startup, Shutdown (leaving mastership: handover.py)
    # ------------------------------------------------------------------------------------------

    def _on_startup(self, _ev: Startup, now: float) -> list[Action]:
        p = self.params
        self._startup_until = now + p.startup_delay
        self.master_adver_interval_cs = p.interval_cs                      # §6.4.1-6
        self.master_seen = None
        faults = all_faults(self)
        if faults:
            return self._transition(State.FAULT, "startup: " + ", ".join(faults), now)
        if p.owner and p.startup_delay == 0 and self.may_claim:
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
        return handover.begin_leave(self, State.STOPPED, ev.reason, LEAVE_STOP, now)

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
        preempt = (p.preempt or p.owner) and not hold and self.may_claim
        return preempt and priority < self.effective_priority

    def _on_advert_backup(self, ev: AdvertReceived, now: float) -> list[Action]:
        adv = ev.adv
        dropped = self._screen(adv, now)
        if dropped is not None:
            return dropped
        out = self._observe(adv, now)
        if adv.priority == 0:                                              # §6.4.2-12
            self._lower = None                       # it let go: nothing to wait for
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
            self._lower = Lower(adv.src, adv.interval_cs, now)
            if self.params.preempt_delay > 0:
                if self._lower_since is None:
                    self._lower_since = now
                if now < self._lower_since + self.params.preempt_delay:
                    return out + self._accept(adv, now)                   # preempt_delay
            return out                                                     # §6.4.2-14 discard
        self._lower_since = self._lower = None
        self._preparing = False
        out += self._accept(adv, now)                                     # §6.4.2-13
        self._repeat_ok = True
        return out

    def _accept(self, adv: Advertisement, now: float) -> list[Action]:
        """§6.4.2-13: adopt the interval, recompute, restart Master_Down_Timer."""
        self.master_adver_interval_cs = adv.interval_cs
        self._down_at = max(now + self._mdi_seconds(), self._startup_until) if self.may_claim \
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
            return handover.advert_while_leaving(self, adv, now)
        out = self._observe(adv, now)
        if adv.priority == 0:                                              # §6.4.3-12
            self._adver_at = now + self._interval_sec
            out.append(self._advert(self.effective_priority))
            if self._awaiting is not None and adv.src == self._awaiting.src:
                out += handover.start_resources(self, now, f"{adv.src} let go")
            return out
        if beats_us:                                                       # §6.4.3-13
            why = "higher priority" if adv.priority > mine else "equal priority, higher address"
            why = f"{why} from {adv.src} ({adv.priority})"
            if p.stop_before_leave:          # exclusive resources go down before we yield
                return out + handover.begin_leave(self, State.BACKUP, why, LEAVE_PREEMPTED, now)
            out += self._transition(State.BACKUP, why, now)
            self.master_adver_interval_cs = adv.interval_cs
            self._arm_down(now, self._mdi_cs())
            self.master_seen = MasterInfo(adv.src, adv.priority, adv.interval_cs, now)
            return out + [MasterSeen(adv.src, adv.priority, adv.interval_cs)]
        if self._awaiting is not None and adv.src == self._awaiting.src:
            return out + handover.old_master_heard(self, adv, now)      # it is yielding
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
        if rival is None or rival.src != adv.src or now - rival.first > 4 * span:
            self._rival = Rival(adv.src, now)
            return []
        if rival.counted or now - rival.first < span / 2:
            return []
        rival.counted = True
        return [DualMaster(adv.src, adv.priority)] + self._log(
            "warning", "dual-master", now,
            f"{adv.src} keeps advertising as master (priority {adv.priority}) beside us")


#: A handler: the router, the input (of the row's type) and `now`.
Handler = Callable[[VirtualRouter, Any, float], list[Action]]
_V = VirtualRouter

#: (state, input type) -> handler. Rows not listed raise LocalProtocolError.
EVENT_HANDLERS: dict[tuple[State, type], Handler] = {
    (I, Startup): _V._on_startup, (S, Startup): _V._on_startup,
    (I, Shutdown): _V._on_shutdown_idle, (F, Shutdown): _V._on_shutdown_idle,
    (B, Shutdown): _V._on_shutdown_idle, (M, Shutdown): _V._on_shutdown_master,
    (B, AdvertReceived): _V._on_advert_backup,
    (M, AdvertReceived): _V._on_advert_master,
    # Initialize (§6.4.1) waits for Startup: adverts heard meanwhile are ignored; so in fault
    # (we do not take part) and stopped.
    (I, AdvertReceived): _V._ignore, (F, AdvertReceived): _V._ignore,
    (S, AdvertReceived): _V._ignore,
    (M, ResourcesStopped): handover.on_resources_stopped,
    **{(st, ev): conditions.on_condition for st in State
       for ev in (LinkChanged, PrimaryChanged, TrackChanged, TrackRemoved, SyncGroupChanged)},
    **{(st, Maintenance): conditions.on_maintenance for st in State},
    **{(st, ResourceFailed): conditions.on_resource_failed for st in State},
    **{(st, ClearFailures): conditions.on_clear for st in State},
    **{(st, ParamsChanged): conditions.on_params for st in State},
    **{(st, ResourcesStopped): _V._ignore for st in (I, B, F, S)},
}
