"""Tracking (objects -> effective priority / fault) and sync groups. Pure: no clock, no I/O.

Tracking (keepalived semantics; keys in docs/config.md)
-------------------------------------------------------
Each tracked object (interface, script, file, resource) has a name, an up/down status and a
weight:

* weight < 0: added to the priority while the object is **down**;
* weight > 0: added to the priority while the object is **up**;
* weight == 0: while the object is down the instance is in **fault** (releases, priority 0).

The effective priority of a non-owner is `clamp(priority + sum(applied weights), 1, 254)`: it
never reaches 0 (reserved for "leaving") nor 255 (reserved for the owner), RFC 9568 §5.2.4. The
address owner keeps 255 whatever the weights; only a weight-0 fault moves it.

Files (keepalived `track_file`): the daemon reads an integer `value`; `file_track(...)` turns it
into a status: with configured weight 0 a non-zero value is a fault; otherwise the shift is
`value * weight`, and a shift of -254 or less is a fault.

Sync groups (instances move together; docs/config.md)
-----------------------------------------------------
Definition, evaluated over the members' own conditions (never over what the group imposed, so a
group can always recover):

1. **fault together**: while any member is in fault for its own reason (link down, weight-0
   tracker), every other member is in fault too (releases its VIPs, a master sends priority 0).
   When no member has an own fault any more, all leave fault together.
2. **leave master together**: a member is *beaten* when it is a backup that cannot be master by
   its own rules: in maintenance, or a live master is on the link that it would not preempt. While
   any member is beaten, every other member is *held*: a master resigns (priority 0, the
   graceful-handover mode of the instance, then backup) when the hold begins, and a held backup
   behaves as if preempt were off. A held backup still takes over when its master goes silent
   (Master_Down_Interval), so a VR never stays without a master because of the group, and a
   member that gained mastership that way is not resigned again while the same hold lasts.

`SyncGroup.directives(views)` computes the directive per member; `settle(...)` feeds the changed
ones to the routers until nothing changes (a fixed point, reached in at most a few rounds).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from vmacd.core.events import Action, SyncGroupChanged

OWNER_PRIORITY = 255
MIN_PRIORITY = 1
MAX_BACKUP_PRIORITY = 254
#: keepalived: a track_file shift at or below this puts the instance in fault.
FILE_FAULT_SHIFT = -254


# ----------------------------------------------------------------------------------------------
# Tracking
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackState:
    """One tracked object's latest status. See the module docstring for the weight rules."""

    name: str
    up: bool
    weight: int = 0

    @property
    def shift(self) -> int:
        """Priority shift this object applies now (0 when it applies nothing or means fault)."""
        if self.weight < 0 and not self.up:
            return self.weight
        if self.weight > 0 and self.up:
            return self.weight
        return 0

    @property
    def faulted(self) -> bool:
        return self.weight == 0 and not self.up


@dataclass(frozen=True)
class Tracking:
    """All tracked objects of one instance, kept sorted by name (so equal sets compare equal)."""

    states: tuple[TrackState, ...] = ()

    def update(self, name: str, up: bool, weight: int) -> Tracking:
        """Return a new Tracking with `name` set to (up, weight)."""
        rest = [s for s in self.states if s.name != name]
        rest.append(TrackState(name, up, weight))
        return replace(self, states=tuple(sorted(rest, key=lambda s: s.name)))

    def remove(self, name: str) -> Tracking:
        """Return a new Tracking without `name` (the object is no longer configured)."""
        return replace(self, states=tuple(s for s in self.states if s.name != name))

    @property
    def shift(self) -> int:
        """Sum of the applied weights."""
        return sum(s.shift for s in self.states)

    @property
    def faults(self) -> tuple[str, ...]:
        """Names of the objects that put the instance in fault (down, weight 0)."""
        return tuple(s.name for s in self.states if s.faulted)


def effective_priority(priority: int, tracking: Tracking) -> int:
    """Priority in force: the owner stays 255; others clamp(priority + shift, 1, 254)."""
    if priority == OWNER_PRIORITY:
        return OWNER_PRIORITY
    return max(MIN_PRIORITY, min(MAX_BACKUP_PRIORITY, priority + tracking.shift))


def file_track(name: str, value: int, weight: int) -> TrackState:
    """keepalived track_file: integer file content `value` with configured `weight` -> status."""
    if weight == 0:
        return TrackState(name, up=(value == 0), weight=0)
    shift = value * weight
    if shift <= FILE_FAULT_SHIFT:
        return TrackState(name, up=False, weight=0)
    if shift < 0:
        return TrackState(name, up=False, weight=shift)
    return TrackState(name, up=True, weight=shift)


# ----------------------------------------------------------------------------------------------
# Sync groups
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberView:
    """What a group needs to know about one member (VirtualRouter.group_view()).

    `own_fault`: in fault (or would be, if started) for its own reason, not the group's.
    `beaten`: a backup that cannot be master by its own rules (see module docstring).
    `active`: started and not stopped; members in init/stopped do not drive the group.
    """

    own_fault: bool
    beaten: bool
    active: bool = True


@dataclass(frozen=True)
class Directive:
    """What the group imposes on one member."""

    fault: bool = False
    hold: bool = False
    reason: str = ""


class GroupMember(Protocol):
    """The part of VirtualRouter that settle() uses (a Runner offers it too)."""

    @property
    def group_directive(self) -> Directive: ...

    def group_view(self) -> MemberView: ...

    def handle(self, event: object, now: float) -> list[Action]: ...


@dataclass(frozen=True)
class SyncGroup:
    """A named set of instance names that move together."""

    name: str
    members: tuple[str, ...]

    def directives(self, views: Mapping[str, MemberView]) -> dict[str, Directive]:
        """Directive per member from the members' own conditions (rules 1 and 2 above)."""
        out: dict[str, Directive] = {}
        for me in self.members:
            others = [m for m in self.members if m != me and m in views and views[m].active]
            faulty = [m for m in others if views[m].own_fault]
            beaten = [m for m in others if views[m].beaten]
            reasons = [f"{m} in fault" for m in faulty] + [f"{m} not master" for m in beaten]
            reason = f"sync group {self.name}: " + ", ".join(reasons) if reasons else ""
            out[me] = Directive(fault=bool(faulty), hold=bool(beaten), reason=reason)
        return out


def settle(group: SyncGroup, routers: Mapping[str, GroupMember], now: float,
           max_rounds: int = 8) -> list[tuple[str, Action]]:
    """Apply the group's directives until they stop changing; return (member, action) pairs.

    Call it after any event that changed a member's state. Each changed directive is delivered as
    one SyncGroupChanged event. Raises RuntimeError if no fixed point is reached (a bug).
    """
    out: list[tuple[str, Action]] = []
    for _ in range(max_rounds):
        views = {name: routers[name].group_view() for name in group.members if name in routers}
        wanted = group.directives(views)
        changed = [n for n in group.members
                   if n in routers and routers[n].group_directive != wanted[n]]
        if not changed:
            return out
        for name in changed:
            d = wanted[name]
            ev = SyncGroupChanged(fault=d.fault, hold=d.hold, reason=d.reason)
            out.extend((name, a) for a in routers[name].handle(ev, now))
    raise RuntimeError(f"sync group {group.name} did not settle in {max_rounds} rounds")
