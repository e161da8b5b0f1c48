"""The daemon as the control plane sees it (commands.DaemonAPI): status, history, maintenance,
clear, reload — reading and driving the runners, never their routers directly."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vmacd import __version__
from vmacd.loop import Deferred

if TYPE_CHECKING:
    from vmacd.daemon import Daemon


class ControlAPI:
    """commands.DaemonAPI over a running Daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def status(self) -> dict:
        d = self.d
        instances = [r.status() for r in d.runners.values()]
        for name in d.config.instance_names:
            if name in d.runners:
                continue
            cfg = d.config.instance(name)
            why = d.waiting.get(name) or "starting"
            instances.append({"name": name, "vrid": cfg.vrid, "interface": cfg.interface,
                              "family": cfg.family, "version": cfg.version, "state": "init",
                              "priority": cfg.priority, "effective_priority": cfg.priority,
                              "vips": [str(v) for v in cfg.virtual_ips], "master": None,
                              "waiting": why})
        order = {n: i for i, n in enumerate(d.config.instance_names)}
        instances.sort(key=lambda i: order.get(i["name"], len(order)))
        return {"node": d.config.global_.node, "version": __version__, "pid": os.getpid(),
                "instances": instances}

    def history(self) -> list[dict]:
        d = self.d
        out = [h for r in d.runners.values() for h in r.history()]
        return sorted(out, key=lambda h: h["time"])

    def maintenance(self, instance: str, on: bool, force: bool, persist: bool) -> Deferred:
        runner = self.d.runners[instance]          # KeyError -> "unknown instance" reply
        reply = Deferred()

        def done(answer: dict) -> None:
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

    def clear(self, instance: str) -> dict:
        return self.d.runners[instance].clear()

    def reload(self) -> Deferred:
        return self.d.reloader.reload()
