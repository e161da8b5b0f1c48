"""Reload as a diff (SIGHUP, `vmacctl reload`): which instances to add, remove, rebuild or leave.

Instances are matched by name and compared with `==`. The model resolves references at load, so
an instance holds the Auth, TrackScript and Resource objects and the SyncGroup it belongs to: a
change to any of them makes the instance compare unequal and it lands in `changed`. Unchanged
instances keep their state (no flap).
"""
from __future__ import annotations

from dataclasses import dataclass

from vmacd.config.model import Config


@dataclass(frozen=True)
class ConfigDiff:
    added: tuple[str, ...]       # in the new config only, in its order
    removed: tuple[str, ...]     # in the old config only, in its order
    changed: tuple[str, ...]     # in both, unequal (rebuild)
    unchanged: tuple[str, ...]   # in both, equal (leave alone)
    global_changed: bool = False  # [global] differs (node, sockets, logging, notify, watchdog)


def diff(old: Config, new: Config) -> ConfigDiff:
    """Compare two loaded configs instance by instance."""
    old_by_name = {i.name: i for i in old.instances}
    new_names = set(new.instance_names)
    added, changed, unchanged = [], [], []
    for inst in new.instances:
        before = old_by_name.get(inst.name)
        if before is None:
            added.append(inst.name)
        elif before == inst:
            unchanged.append(inst.name)
        else:
            changed.append(inst.name)
    removed = tuple(n for n in old.instance_names if n not in new_names)
    return ConfigDiff(tuple(added), removed, tuple(changed), tuple(unchanged),
                      old.global_ != new.global_)
