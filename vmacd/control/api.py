"""The daemon as the control plane sees it (commands.DaemonAPI): status, history, maintenance,
clear, reload — reading and driving the runners, never their routers directly."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vmacd import __version__
from vmacd.linux import sched
from vmacd.loop import Deferred
from vmacd.status import HistoryEntry, history, instance_status, waiting_status

if TYPE_CHECKING:
    from vmacd.control.commands import JsonObject
    from vmacd.daemon import Daemon


class ControlAPI:
    """commands.DaemonAPI over a running Daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def status(self) -> JsonObject:
        d = self.d
        instances = [instance_status(r) for r in d.runners.values()]
        for name in d.config.instance_names:
            if name in d.runners:
                continue
            instances.append(waiting_status(d.config.instance(name),
                                            d.waiting.get(name) or "starting"))
        order = {n: i for i, n in enumerate(d.config.instance_names)}
        instances.sort(key=lambda i: order.get(i["name"], len(order)))
        policy, prio = sched.policy_of(0)
        return {"node": d.config.global_.node, "version": __version__, "pid": os.getpid(),
                "scheduling": {"policy": policy, "priority": prio}, "instances": instances}

    def history(self) -> list[HistoryEntry]:
        d = self.d
        out = [h for r in d.runners.values() for h in history(r)]
        return sorted(out, key=lambda h: h["time"])

    def maintenance(self, instance: str, on: bool, force: bool,
                    persist: bool) -> Deferred[JsonObject]:
        runner = self.d.runners[instance]          # KeyError -> "unknown instance" reply
        reply: Deferred[JsonObject] = Deferred()

        def done(answer: JsonObject) -> None:
            if answer.get("ok") is not False:
                if persist or not on:
                    try:
                        self.d.persist_maintenance(instance, on)
                    except OSError as exc:
                        answer = {"ok": False, "error": f"{instance}: maintenance is {'on' if on else 'off'}"
                                                        f" but could not be persisted: {exc}"}
                if answer.get("ok") is not False:
                    answer = {**answer, "persistent": bool(persist and on)}
            reply.resolve(answer)

        runner.maintenance(on, force).then(done)
        return reply

    def clear(self, instance: str) -> JsonObject:
        return self.d.runners[instance].clear()

    def reload(self) -> Deferred[JsonObject]:
        return self.d.reloader.reload()
