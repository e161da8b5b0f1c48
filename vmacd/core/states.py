"""The vocabulary of the state machine: its states, legal edges, history entries and errors.

Kept apart from fsm.py so the handlers that live in conditions.py can use it without importing
the class they belong to.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from vmacd.core.proto import IPAddress


class State(enum.StrEnum):
    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"        # the RFC's "Active"
    FAULT = "fault"
    STOPPED = "stopped"


class LocalProtocolError(RuntimeError):
    """The caller drove the state machine wrongly (our bug, not the peer's). State is unchanged."""


# one letter each, so the tables below read as tables
I, B, M, F, S = State.INIT, State.BACKUP, State.MASTER, State.FAULT, State.STOPPED  # noqa: E741

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

#: Why a master is leaving: a stop, the operator's drain, a sync-group hold, a resource failure,
#: or a higher-priority router heard while exclusive resources still run (they go down first).
LEAVE_STOP, LEAVE_DRAIN, LEAVE_HOLD, LEAVE_FAILURE, LEAVE_PREEMPTED = (
    "stop", "drain", "hold", "failure", "preempted")


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


@dataclass(frozen=True)
class Lower:
    """The lower-priority master a backup is about to preempt: its source and interval (cs), and
    when it was last heard. An exclusive resource waits for it to let go (fsm.py)."""

    src: IPAddress | None
    interval_cs: int
    time: float
