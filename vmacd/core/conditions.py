"""The state machine's handlers for everything but advertisements and timers: link, addresses,
tracking, sync groups, maintenance, resource failures and reloads.

They are part of `fsm.VirtualRouter` (its EVENT_HANDLERS table names them) and work on its state;
they live here so each file reads in one sitting. Each takes the router, the input and `now`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vmacd.core import handover
from vmacd.core.events import (
    Action,
    Announce,
    ClaimVips,
    ClearFailures,
    HandoverDone,
    LinkChanged,
    Maintenance,
    ParamsChanged,
    PrimaryChanged,
    ResourceFailed,
    SyncGroupChanged,
    TrackChanged,
    TrackRemoved,
)
from vmacd.core.groups import Directive
from vmacd.core.states import LEAVE_DRAIN, LEAVE_FAILURE, LEAVE_HOLD, LocalProtocolError, State

if TYPE_CHECKING:
    from vmacd.core.fsm import VirtualRouter

Condition = LinkChanged | PrimaryChanged | TrackChanged | TrackRemoved | SyncGroupChanged


def own_faults(vr: VirtualRouter) -> tuple[str, ...]:
    """What keeps this router itself from taking part: link, address, tracked objects."""
    link = () if vr.link_up else ("link down",)
    addr = () if vr.has_primary else ("no address to advertise from",)
    return link + addr + tuple(f"track {n} down" for n in vr.tracking.faults)


def all_faults(vr: VirtualRouter) -> tuple[str, ...]:
    """Its own faults and its sync group's."""
    g = vr.group_directive
    return own_faults(vr) + ((g.reason or "sync group fault",) if g.fault else ())


def on_condition(vr: VirtualRouter, ev: Condition, now: float) -> list[Action]:
    hold_began, hold_reason = False, ""
    if isinstance(ev, LinkChanged):
        vr.link_up = ev.up
    elif isinstance(ev, PrimaryChanged):
        vr.has_primary = ev.address is not None
        if ev.address is not None:              # advertised from, and the §6.4.3-13 tie-break
            vr._set_params(replace(vr.params, primary=ev.address))
    elif isinstance(ev, TrackChanged):
        vr.tracking = vr.tracking.update(ev.name, ev.up, ev.weight)
    elif isinstance(ev, TrackRemoved):
        vr.tracking = vr.tracking.remove(ev.name)
    else:
        hold_began = ev.hold and not vr.group_directive.hold
        hold_reason = ev.reason or "sync group hold"
        vr.group_directive = Directive(ev.fault, ev.hold, ev.reason)
    if vr.state in (State.INIT, State.STOPPED):
        return []                                          # recorded; Startup consults them
    faults = all_faults(vr)
    if faults and vr.state is not State.FAULT:
        return enter_fault(vr, ", ".join(faults), now)
    if not faults and vr.state is State.FAULT:
        if vr.params.owner and vr.may_claim and vr.params.startup_delay == 0:
            return vr._transition(State.MASTER, "recovered: address owner", now)
        return vr._transition(State.BACKUP, "recovered", now)
    if hold_began and vr.state is State.MASTER and not vr.leaving:
        return handover.begin_leave(vr, State.BACKUP, hold_reason, LEAVE_HOLD, now)
    return []


def enter_fault(vr: VirtualRouter, reason: str, now: float) -> list[Action]:
    """A master sends one priority-0 advert (if its link is up) and releases at once."""
    if vr.state is State.MASTER:
        leaving = vr._leaving
        if leaving is not None and leaving[0] is State.STOPPED:
            return handover.finish_leave(vr, now, f"fault: {reason}")
        out: list[Action] = []
        if vr.link_up and (leaving is None or vr._stopping):
            out.append(vr._advert(0))
        return out + vr._transition(State.FAULT, reason, now)
    return vr._transition(State.FAULT, reason, now)


def on_maintenance(vr: VirtualRouter, ev: Maintenance, now: float) -> list[Action]:
    if ev.on == vr.maintenance:
        return [HandoverDone(True, f"maintenance already {'on' if ev.on else 'off'}")]
    if not ev.on:
        vr.maintenance = False
        if vr._leaving is not None and vr._leaving[2] == LEAVE_DRAIN:
            return handover.cancel_leave(vr, now) + [HandoverDone(True, "maintenance off: still master")]
        if vr.state is State.BACKUP:
            vr._arm_down(now, vr._mdi_cs())
        return [HandoverDone(True, "maintenance off")]
    ms = vr.master_seen
    if vr.state is State.BACKUP and not ev.force and (ms is None or ms.priority == 0):
        return [HandoverDone(False, f"no other router is heard for VRID {vr.params.vrid}: "
                                    "draining would leave the VIP without a master (use --force)")]
    vr.maintenance = True
    vr._drain_force = ev.force
    if vr.state is State.MASTER:
        if vr._leaving is None:
            return handover.begin_leave(vr, State.BACKUP, "maintenance on", LEAVE_DRAIN, now)
        return [HandoverDone(True, "maintenance on: already leaving")]
    vr._down_at = None                                                    # never claims
    return [HandoverDone(True, "maintenance on")]


def on_resource_failed(vr: VirtualRouter, ev: ResourceFailed, now: float) -> list[Action]:
    """Heartbeat/Pacemaker: a failed resource takes the node out of mastership for `hold`
    seconds (0: until ClearFailures), so a service broken everywhere cannot ping-pong."""
    until = now + ev.hold if ev.hold > 0 else None
    vr.failed[ev.resource] = (ev.op, until)
    rearm_hold(vr)
    reason = f"resource {ev.resource} {ev.op} failed"
    if vr.state is State.MASTER and vr._leaving is None:
        return handover.begin_leave(vr, State.BACKUP, reason, LEAVE_FAILURE, now)
    if vr.state is State.BACKUP:
        vr._down_at = None
    return []


def rearm_hold(vr: VirtualRouter) -> None:
    untils = [u for _op, u in vr.failed.values() if u is not None]
    vr._hold_at = min(untils) if untils else None


def hold_expired(vr: VirtualRouter, now: float) -> list[Action]:
    vr.failed = {n: (op, u) for n, (op, u) in vr.failed.items() if u is None or u > now}
    rearm_hold(vr)
    return failures_cleared(vr, now, "failure_timeout passed")


def on_clear(vr: VirtualRouter, _ev: ClearFailures, now: float) -> list[Action]:
    if not vr.failed:
        return []
    vr.failed = {}
    vr._hold_at = None
    return failures_cleared(vr, now, "cleared by the operator")


def failures_cleared(vr: VirtualRouter, now: float, why: str) -> list[Action]:
    if vr.failed:
        return []
    out = vr._log("info", "failure-hold", now, f"resource failures forgotten ({why})")
    if vr.state is State.BACKUP and vr.may_claim:
        vr._arm_down(now, vr._mdi_cs())
    return out


def on_params(vr: VirtualRouter, ev: ParamsChanged, now: float) -> list[Action]:
    """A reload changed what can change in place (same VRID, family, version, owner role):
    no transition; a master advertises the new values at once."""
    old, new = vr.params, ev.params
    if (new.vrid, new.family, new.version, new.owner) != (old.vrid, old.family, old.version,
                                                          old.owner):
        raise LocalProtocolError("ParamsChanged cannot change VRID, family, version or owner")
    vr._set_params(replace(new, primary=old.primary))
    if vr.state is not State.MASTER or vr._leaving is not None:
        return []
    out: list[Action] = []
    if new.vips != old.vips:
        out += [ClaimVips(new.vrid, new.family, new.vips),
                Announce(new.vrid, new.family, new.vips, new.garp_repeat)]
    if (new.interval_cs, new.priority, new.vips) != (old.interval_cs, old.priority, old.vips):
        vr._adver_at = now + vr._interval_sec
        out.insert(0, vr._advert(vr.effective_priority))
    return out
