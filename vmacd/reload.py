"""Reload (SIGHUP, `vmacctl reload`) as a diff: change what changed and nothing else.

The new file is loaded and validated first; a bad one is refused and the running config goes on.
Then, instance by instance (matched by name):

- unchanged: left alone;
- updated in place — VIP list, priority, interval, preempt, trackers, resources, auth key, GARP
  settings, accept, notify, warn_after, checksum options, unicast peers, sync group: the runner
  applies it (`Runner.update`) without a transition, without leaving mastership, keeping its
  history and counters; a master advertises the new values at once;
- restarted — interface, VRID, family, version, the vMAC device (`vmac`, `vmac_mode`), the
  address-owner role (priority 255) or a switch to or from IPsec AH (another socket): released
  make-before-break and built again;
- added / removed: built and started / released and deleted.
An instance whose interface does not exist (yet) waits for it, as at start-up.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from vmacd.config import load as config_load
from vmacd.config import model
from vmacd.config.reader import ConfigError
from vmacd.control.commands import ReloadError
from vmacd.loop import Deferred

if TYPE_CHECKING:
    from vmacd.control.commands import JsonObject
    from vmacd.daemon import Daemon

log = logging.getLogger("vmacd.reload")

#: Instance keys whose change restarts the instance (everything else is applied in place).
RESTART_KEYS = ("interface", "vrid", "version", "vmac", "vmac_mode")


def _ah(inst: model.Instance) -> bool:
    return inst.auth is not None and inst.auth.type == "ah"


def needs_restart(old: model.Instance, new: model.Instance) -> list[str]:
    """The keys that force a restart of this instance (empty: it can be updated in place)."""
    keys = [k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)]
    if old.family != new.family:
        keys.append("virtual_ips (address family)")
    if old.owner != new.owner:
        keys.append("priority (address owner)")
    if _ah(old) != _ah(new):
        keys.append("auth (IPsec AH)")
    return keys


@dataclass(frozen=True)
class Plan:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    restarted: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def changed(self) -> tuple[str, ...]:
        return self.restarted + self.updated


def plan(old: model.Config, new: model.Config) -> Plan:
    """Compare two loaded configs instance by instance."""
    before = {i.name: i for i in old.instances}
    added, restarted, updated, unchanged = [], [], [], []
    for inst in new.instances:
        prev = before.get(inst.name)
        if prev is None:
            added.append(inst.name)
        elif prev == inst:
            unchanged.append(inst.name)
        elif needs_restart(prev, inst):
            restarted.append(inst.name)
        else:
            updated.append(inst.name)
    removed = tuple(n for n in old.instance_names if n not in set(new.instance_names))
    return Plan(tuple(added), removed, tuple(restarted), tuple(updated), tuple(unchanged))


def changed_keys(old: model.Instance, new: model.Instance) -> list[str]:
    return [f.name for f in fields(model.Instance) if getattr(old, f.name) != getattr(new, f.name)]


class Reloader:
    """Applies a reload to a running daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def on_sighup(self) -> None:
        """SIGHUP goes through the same command table as `vmacctl reload`."""
        control = self.d.control
        if control is None:
            return

        def logged(reply: JsonObject) -> None:
            if reply.get("ok"):
                log.info("reloaded: %s", {k: v for k, v in reply.items() if k != "ok"})
            else:
                log.error("%s; keeping the running config", reply.get("error"))

        control.dispatcher.handle({"cmd": "reload"}, logged)

    def reload(self) -> Deferred[JsonObject]:
        d = self.d
        result: Deferred[JsonObject] = Deferred()
        try:
            new = config_load.load(d.path)
        except ConfigError as exc:
            raise ReloadError("; ".join(str(i) for i in exc.errors)) from None
        except OSError as exc:
            raise ReloadError(f"{d.path}: {exc.strerror or exc}") from None
        old, p = d.config, plan(d.config, new)
        d.notifier.reloading()
        if old.global_ != new.global_:
            self._global(old.global_, new.global_)
        for name in p.updated:
            log.info("%s: reload changes %s in place", name,
                     ", ".join(changed_keys(old.instance(name), new.instance(name))),
                     extra={"instance": name})
        for name in p.restarted:
            log.info("%s: reload restarts it (%s)", name,
                     ", ".join(needs_restart(old.instance(name), new.instance(name))),
                     extra={"instance": name})
        d.config = new
        for name in (*p.removed, *p.restarted):
            d.waiting.pop(name, None)
            d.waiting_history.pop(name, None)
        for name in p.removed:
            d.metrics.remove_instance(name)
        d.trackers.configure(new.instances)
        for name in p.updated:
            runner = d.runners.get(name)
            if runner is None:
                continue                      # waiting: it is built from the new config later
            runner.update(new.instance(name))
            if (old.instance(name).track_interfaces, old.instance(name).track_scripts,
                    old.instance(name).track_files) != (new.instance(name).track_interfaces,
                                                        new.instance(name).track_scripts,
                                                        new.instance(name).track_files):
                for event in d.trackers.initial(new.instance(name), d.interfaces.is_up_by_name):
                    runner.handle(event)
        gone = [d.runners[n] for n in (*p.removed, *p.restarted) if n in d.runners]
        histories = {r.name: list(r.router.history) for r in gone if r.name in p.restarted}

        def rebuild() -> None:
            for runner in gone:
                d.remove_runner(runner)
            built = d.build([new.instance(n) for n in (*p.restarted, *p.added)])
            for runner in built:
                d.start_runner(runner, histories.get(runner.name, ()))
            d.notifier.ready("reloaded")
            reply: JsonObject = {"added": list(p.added), "removed": list(p.removed),
                     "changed": list(p.changed), "restarted": list(p.restarted),
                     "updated": list(p.updated), "unchanged": list(p.unchanged)}
            waiting = {n: why for n, why in d.waiting.items() if n in (*p.restarted, *p.added)}
            if waiting:
                reply["waiting"] = waiting
            result.resolve(reply)

        d.shutdown_runners(gone, "reload", rebuild)
        return result

    def _global(self, old: model.Global, new: model.Global) -> None:
        d = self.d
        if (old.control_socket, old.metrics_listen, old.state_dir) != (
                new.control_socket, new.metrics_listen, new.state_dir):
            log.warning("[global] control_socket, metrics_listen and state_dir apply after a "
                        "restart")
        d.notify_script = new.notify
        if old.log_level != new.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        if old.node != new.node:
            d.metrics.build_info(new.node)
        if old.realtime_priority != new.realtime_priority:
            d.schedule(new.realtime_priority)
