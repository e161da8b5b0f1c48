"""Real-time scheduling for the daemon and its guardian (`global.realtime_priority`).

A backup that a busy box does not schedule in time misses the master's advertisements and takes
over from a live master; a master that runs late makes its backups do so. SCHED_RR at a low
real-time priority puts vmacd ahead of every normally scheduled process (web servers, builds,
backups) and behind the box's own real-time work. SCHED_RESET_ON_FORK gives the commands vmacd
starts (track scripts, resources, notify) normal scheduling again. The kernel's real-time
throttling (kernel.sched_rt_runtime_us, 95 % of each second by default) keeps a runaway daemon
from taking a CPU whole; the systemd watchdog restarts a daemon that hangs.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

POLICY = os.SCHED_RR | os.SCHED_RESET_ON_FORK


def set_realtime(pids: Iterable[int], priority: int) -> str | None:
    """SCHED_RR at `priority` (1..99) for each pid (0: this process). None when done, else why
    not (e.g. no CAP_SYS_NICE in a container)."""
    try:
        for pid in pids:
            os.sched_setscheduler(pid, POLICY, os.sched_param(priority))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def set_normal(pids: Iterable[int]) -> str | None:
    """Back to SCHED_OTHER (a reload set realtime_priority = 0)."""
    try:
        for pid in pids:
            os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def policy_of(pid: int) -> tuple[str, int]:
    """("rr" | "fifo" | "other" | ..., priority) of `pid`, for status and tests."""
    names = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr",
             os.SCHED_BATCH: "batch", os.SCHED_IDLE: "idle"}
    policy = os.sched_getscheduler(pid) & ~os.SCHED_RESET_ON_FORK
    return names.get(policy, str(policy)), os.sched_getparam(pid).sched_priority
