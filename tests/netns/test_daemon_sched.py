"""Real-time scheduling (global.realtime_priority, default 5): the daemon and its guardian run
with SCHED_RR, the commands they start with normal scheduling; `vmacctl status` shows it."""
from __future__ import annotations

import os
import time

from daemon_util import fleet
from vmaclab.util import wait_until

from vmacd.linux.sched import policy_of

__all__ = ["fleet"]


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def test_daemon_and_guardian_run_sched_rr_and_their_commands_do_not(fleet) -> None:
    # a resource whose start runs for a while, so the command can be looked at
    res = {"slow": {"start": ["/bin/sleep", "2"], "stop": ["/bin/true"]}}
    r1 = fleet.start("r1", 200, resources=res)
    wait_until(lambda: r1.state() == "master", 10.0, what="r1 master")
    pids = r1.pids()
    daemon, guardian = pids["vmacd"], pids["guardian"]
    assert policy_of(daemon) == ("rr", 5)
    assert policy_of(guardian) == ("rr", 5)
    assert r1.status()["scheduling"] == {"policy": "rr", "priority": 5}
    deadline = time.monotonic() + 2.0
    sleepers: list[int] = []
    while not sleepers and time.monotonic() < deadline:
        sleepers = [c for c in _children(daemon) if _comm(c) == "sleep"]
        time.sleep(0.02)
    assert sleepers, "the resource's start command was not seen"
    assert policy_of(sleepers[0]) == ("other", 0)
