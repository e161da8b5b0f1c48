"""What the control plane shows of the instances (`vmacctl status`, `vmacctl history`).

`instance_status(runner)` is one running instance's row of the status reply: state, priorities,
the master it hears, its timers (ms), faults, resource failures, resources, peers and trackers;
`waiting_status(cfg, why)` the row of a configured instance that does not run (yet): its
interface is missing or has no address, or it could not start. `history(runner)` is its
transitions with unix times. Times in the state machine are loop (monotonic) time; the runner's
`wall_offset` turns them into unix time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from vmacd.core.fsm import State

if TYPE_CHECKING:
    from vmacd.config import model
    from vmacd.control.commands import JsonObject
    from vmacd.runner import Runner

#: One transition of `vmacctl history` ("from" is a keyword: the functional form).
HistoryEntry = TypedDict("HistoryEntry", {"time": float, "instance": str, "from": str, "to": str,
                                          "reason": str})


def instance_status(runner: Runner) -> JsonObject:
    """The status row of a running instance."""
    # fsm.VirtualRouter.snapshot() is typed dict[str, object]; the values read below are what
    # core/fsm.py puts there (ints, floats, the master_seen / failed / last_transition dicts)
    r, cfg, wall = runner.router, runner.cfg, runner.wall_offset
    snap = r.snapshot()
    now, deadline = runner.loop.time(), r.get_timer()
    ms = snap["master_seen"]
    master = None
    if r.state is State.MASTER:
        master = {"src": str(runner.primary), "priority": snap["effective_priority"],
                  "interval_ms": cfg.advert_interval_cs * 10}
    elif ms is not None:
        master = {"src": ms["src"], "priority": ms["priority"],          # type: ignore[index]
                  "interval_ms": ms["interval_cs"] * 10}                # type: ignore[index]
    last = snap["last_transition"]
    failed = {name: {"op": info["op"], "until": None if info["until"] is None else wall + info["until"]}
              for name, info in snap["failed"].items()}                 # type: ignore[attr-defined]
    return {
        "name": cfg.name, "vrid": cfg.vrid, "interface": cfg.interface,
        "family": cfg.family, "version": cfg.version, "state": snap["state"],
        "priority": cfg.priority, "effective_priority": snap["effective_priority"],
        "vmac": runner.src_mac if runner.vmac is not None else None,
        "vmac_ifname": None if runner.vmac is None else runner.vmac.ifname,
        "vips": runner.vip_strings(), "master": master,
        "timers": {
            "adver_interval_ms": cfg.advert_interval_cs * 10,
            "master_adver_interval_ms": snap["master_adver_interval_cs"] * 10,  # type: ignore[operator]
            "master_down_interval_ms": round(snap["master_down_interval_cs"] * 10, 2),  # type: ignore[operator]
            "skew_ms": round(snap["skew_time_cs"] * 10, 2),                    # type: ignore[operator]
            "next_timer_in_ms": None if deadline is None
            else round((deadline - now) * 1000, 1)},
        "since": None if last is None else wall + last["time"],               # type: ignore[index]
        "maintenance": snap["maintenance"], "faults": snap["faults"],
        "failed": failed, "resources": runner.resources.status(),
        "peers": runner.peers.status(now),
        "trackers": {t.name: t.up for t in r.tracking.states},
    }


def waiting_status(cfg: model.Instance, why: str) -> JsonObject:
    """The status row of a configured instance that does not run: `why` says what it waits for."""
    return {"name": cfg.name, "vrid": cfg.vrid, "interface": cfg.interface,
            "family": cfg.family, "version": cfg.version, "state": "init",
            "priority": cfg.priority, "effective_priority": cfg.priority,
            "vips": [str(v) for v in cfg.virtual_ips], "master": None, "waiting": why}


def history(runner: Runner) -> list[HistoryEntry]:
    """The instance's transitions, oldest first, with unix times."""
    wall, name = runner.wall_offset, runner.cfg.name
    return [{"time": wall + t.time, "instance": name, "from": t.old, "to": t.new,
             "reason": t.reason} for t in runner.router.history]
