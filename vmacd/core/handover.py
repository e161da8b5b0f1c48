"""Leaving mastership make-before-break, and the order exclusive resources keep.

Part of `fsm.VirtualRouter` (see conditions.py for why it lives apart). A master that leaves
(a stop, the operator's drain, a sync-group hold, a resource failure) sends priority 0 and keeps
its VIPs until the successor is heard, bounded by timers.handover_bound_cs; `graceful_handover =
"rfc"` releases at once instead (RFC 9568 §6.4.3).

Exclusive resources (`params.stop_before_leave`: shared storage that two nodes must never mount
at once) turn both ends around:

* the leaving master stops them first, still advertising, and sends priority 0 only once they are
  stopped (ResourcesStopped); so does a master that hears a higher priority (a preemption): it
  stays master until its resources are down, then yields;
* a backup that became master by preempting a live lower master starts them only once that master
  has let go: its priority 0, or its silence for a Master_Down_Interval. A takeover after a crash
  (no advert heard) or after a priority 0 starts them at once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from vmacd.core import timers
from vmacd.core.events import Action, HandoverDone, ResourcesStopped, RunResources, Stopped
from vmacd.core.proto import Advertisement
from vmacd.core.states import LEAVE_DRAIN, Lower, State

if TYPE_CHECKING:
    from vmacd.core.fsm import VirtualRouter


def begin_leave(vr: VirtualRouter, target: State, reason: str, kind: str,
                now: float) -> list[Action]:
    vr._leaving = (target, reason, kind)
    vr._awaiting = vr._start_at = None
    if vr.params.stop_before_leave:
        # keep advertising until the resources are stopped, then hand over (ResourcesStopped)
        vr._stopping = True
        return [RunResources("stop")] + vr._log(
            "info", "handover", now, f"leaving master ({reason}): stopping resources first")
    return hand_over(vr, now)


def hand_over(vr: VirtualRouter, now: float) -> list[Action]:
    """Send priority 0; keep the VIPs until the successor is heard (or release at once)."""
    assert vr._leaving is not None
    p = vr.params
    out: list[Action] = [vr._advert(0)]
    if p.graceful_handover == "rfc":
        return out + finish_leave(vr, now, "released at once")
    vr._adver_at = None                                                    # §6.4.3-10
    vr._handover_at = now + timers.seconds(timers.handover_bound_cs(p.interval_cs, p.version))
    return out + vr._log("info", "handover", now,
                         f"leaving master ({vr._leaving[1]}): priority 0 sent, keeping VIPs "
                         "until the successor is heard")


def on_resources_stopped(vr: VirtualRouter, _ev: ResourcesStopped, now: float) -> list[Action]:
    if not vr._stopping:
        return []
    vr._stopping = False
    return hand_over(vr, now)


def finish_leave(vr: VirtualRouter, now: float, why: str) -> list[Action]:
    assert vr._leaving is not None
    target, reason, kind = vr._leaving
    out = vr._transition(target, f"{reason}; {why}", now)
    if kind == LEAVE_DRAIN:
        out.append(HandoverDone(True, why))
    return out + ([Stopped()] if target is State.STOPPED else [])


def advert_while_leaving(vr: VirtualRouter, adv: Advertisement, now: float) -> list[Action]:
    """A router advertising with priority > 0 is the successor, unless our exclusive resources
    are still stopping: then nothing is handed over before they are down."""
    if adv.priority and not vr._stopping:
        return finish_leave(vr, now, f"successor {adv.src} heard")
    return []


def handover_expired(vr: VirtualRouter, now: float) -> list[Action]:
    """No successor within the bound. A drain that would leave the VIP without a master is
    refused (unless forced): stay master and end the drain."""
    assert vr._leaving is not None
    if vr._leaving[2] == LEAVE_DRAIN and not vr._drain_force:
        vr._leaving = None
        vr.maintenance = False
        vr._adver_at = now + vr._interval_sec
        why = ("no other router took over within the handover bound: maintenance refused, "
               "still master (use --force to drain anyway)")
        out: list[Action] = [vr._advert(vr.effective_priority)]
        if vr.params.stop_before_leave:
            out.append(RunResources("start"))
        return out + [HandoverDone(False, why)] + vr._log("warning", "handover", now, why)
    return finish_leave(vr, now, "handover bound passed")


def cancel_leave(vr: VirtualRouter, now: float) -> list[Action]:
    """An operator's drain was called off before the successor came: stay master."""
    if vr._stopping:
        return []           # the resources are going down already: the leave goes on
    vr._leaving = vr._handover_at = None
    vr._adver_at = now + vr._interval_sec
    return [vr._advert(vr.effective_priority)]


# ----------------------------------------------------------------------------------------------
# The new master of exclusive resources after a preemption
# ----------------------------------------------------------------------------------------------

def _silent_after(vr: VirtualRouter, lower: Lower) -> float:
    """When the preempted master counts as gone: its last advert + Master_Down_Interval."""
    mdi = timers.master_down_interval_cs(vr.effective_priority, lower.interval_cs,
                                         vr.params.version)
    return lower.time + timers.seconds(mdi)


def resources_on_entry(vr: VirtualRouter, lower: Lower | None, now: float) -> list[Action]:
    """Entering master: start the resources now, or, if they are exclusive and we preempted a
    master that was advertising, once it has let go."""
    if lower is None or not vr.params.stop_before_leave:
        return [RunResources("start")]
    start_at = _silent_after(vr, lower)
    if start_at <= now:
        return [RunResources("start")]
    vr._awaiting, vr._start_at = lower, start_at
    return vr._log("info", "exclusive-wait", now,
                   f"preempted {lower.src}: exclusive resources start once it has let go")


def old_master_heard(vr: VirtualRouter, adv: Advertisement, now: float) -> list[Action]:
    """The preempted master still advertises: its resources are stopping. Answer it as
    §6.4.3-14 says, without a dual-master count (it is yielding), and wait on."""
    vr._awaiting = Lower(adv.src, adv.interval_cs, now)
    vr._start_at = _silent_after(vr, vr._awaiting)
    return [vr._advert(vr.effective_priority)]


def start_resources(vr: VirtualRouter, now: float, why: str) -> list[Action]:
    vr._awaiting = vr._start_at = None
    return [RunResources("start")] + vr._log("info", "exclusive-start", now,
                                             f"starting resources: {why}")
