"""An instance's resources at run time (Heartbeat haresources, Pacemaker's start/stop/monitor).

`ResourceSet` runs one command at a time for its instance: starts in configured order, stops in
reverse order, and monitors each started resource that has a monitor. What it reports goes to a
`ResourceEvents` (the instance's runner): a failed start or `monitor_fall` failed monitors in a
row -> `failed(...)`, the end of a requested stop -> the `then` callback, every change of a
resource's state -> `changed(...)`.

States of one resource: stopped -> starting -> started -> stopping -> stopped, or failed (its start
or monitor failed; a stop brings it back to stopped). A start of something started, or a stop of
something stopped, is skipped: the state machine may ask twice (a stop before a handover, then
again on leaving mastership) and commands run once.

`kind = "filesystem"` resources mount/unmount through `python3 -m vmacd.linux.mounts` (a command
with a timeout: mounting can hang) and are monitored by reading /proc/self/mountinfo.
"""
from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from vmacd.config import model
from vmacd.linux import mounts
from vmacd.linux.procs import Processes, Result
from vmacd.loop import Loop, Timer

log = logging.getLogger("vmacd.resources")


class ResourceEvents(Protocol):
    """What a ResourceSet tells its instance."""

    def failed(self, resource: model.Resource, op: str, detail: str) -> None: ...

    def changed(self, resource: str, up: bool) -> None: ...


def commands(res: model.Resource) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(start argv, stop argv) of a resource, built-in ones for a filesystem."""
    if res.kind == "filesystem" and res.fs is not None:
        fs = res.fs
        mod = [sys.executable, "-I", "-m", "vmacd.linux.mounts"]
        return ((*mod, "mount", fs.device, fs.mountpoint, fs.fstype, fs.options),
                (*mod, "umount", fs.mountpoint, "--budget", f"{max(res.timeout - 1.0, 0.5):g}"))
    return res.start, res.stop


class _Quiet:
    """The events sink of a detached ResourceSet."""

    def failed(self, resource: model.Resource, op: str, detail: str) -> None:
        pass

    def changed(self, resource: str, up: bool) -> None:
        pass


class ResourceSet:
    """The resources of one instance (see the module docstring)."""

    def __init__(self, loop: Loop, procs: Processes, instance: str,
                 resources: Sequence[model.Resource], events: ResourceEvents) -> None:
        self.loop = loop
        self.procs = procs
        self.instance = instance
        self.events = events
        self.resources: tuple[model.Resource, ...] = tuple(resources)
        self.state: dict[str, str] = {r.name: "stopped" for r in self.resources}
        self.prepared = False            # started early, before mastership (a planned handover)
        self._ops: deque[tuple[str, model.Resource, bool]] = deque()   # (op, resource, force)
        self._busy = False
        self._then: list[Callable[[], object]] = []
        self._monitors: dict[str, Timer] = {}
        self._monitor_fails: dict[str, int] = {}
        self._monitor_busy: set[str] = set()

    @property
    def exclusive(self) -> bool:
        """Shared storage: it must be let go before anyone else may take it (no early start)."""
        return any(r.kind == "filesystem" for r in self.resources)

    @property
    def started(self) -> bool:
        return any(s in ("started", "starting") for s in self.state.values())

    def status(self) -> dict[str, str]:
        return dict(self.state)

    # ------------------------------------------------------------------ requests
    def start(self, prepared: bool = False) -> None:
        """Start every resource in order (those not started yet); a failure ends the sequence."""
        self.prepared = prepared
        self._ops = deque(op for op in self._ops if op[0] != "start")
        self._ops.extend(("start", r, False) for r in self.resources)
        self._next()

    def stop(self, then: Callable[[], object] | None = None, force: bool = False) -> None:
        """Stop every resource in reverse order (those not stopped; `force`: every one, as at
        startup, where nothing is known about what a previous run left); `then()` after."""
        self.prepared = False
        self._ops = deque(op for op in self._ops if op[0] != "start")   # no more starts
        self._ops.extend(("stop", r, force) for r in reversed(self.resources))
        if then is not None:
            self._then.append(then)
        self._next()

    def update(self, resources: Sequence[model.Resource]) -> None:
        """A reload: removed resources are stopped if they run, added ones start when the
        instance next asks for a start (a master starts them now), changed ones keep running
        and use their new definition from now on (monitor settings included)."""
        new = {r.name: r for r in resources}
        for res in self.resources:
            if res.name not in new and self.state.get(res.name) in ("started", "starting", "failed"):
                self._ops.append(("stop", res, True))
            if res.name not in new:
                self._stop_monitor(res.name)
        was_running = self.started
        self.resources = tuple(resources)
        self.state = {r.name: self.state.get(r.name, "stopped") for r in self.resources}
        for res in self.resources:
            if res.name in self._monitors:
                self._stop_monitor(res.name)
                self._start_monitor(res)
        if was_running:
            self._ops.extend(("start", r, False) for r in self.resources
                             if self.state[r.name] == "stopped")
        self._next()

    @property
    def busy(self) -> bool:
        """A command runs or is queued."""
        return self._busy or bool(self._ops)

    def detach(self) -> None:
        """The instance is going away: monitors stop, queued starts are dropped, but queued stops
        still run (a stopping daemon waits for them); nothing is reported any more."""
        for name in list(self._monitors):
            self._stop_monitor(name)
        self._ops = deque(op for op in self._ops if op[0] == "stop")
        self.events = _Quiet()

    # ------------------------------------------------------------------ sequencing
    def _next(self) -> None:
        while not self._busy and self._ops:
            op, res, force = self._ops.popleft()
            state = self.state.get(res.name)
            if state is None:
                continue
            if op == "start" and state in ("started", "starting"):
                continue
            if op == "stop" and state == "stopped" and not force:
                continue
            self._run(op, res)
        if not self._busy and not self._ops and self._then:
            then, self._then = self._then, []
            for fn in then:
                self.loop._call(fn, ())

    def _run(self, op: str, res: model.Resource) -> None:
        start, stop = commands(res)
        argv = start if op == "start" else stop
        if op == "stop":
            self._stop_monitor(res.name)
        self._set(res.name, "starting" if op == "start" else "stopping")
        self._busy = True
        self.procs.run(argv, res.timeout, lambda result: self._done(op, res, result),
                       key=f"resources:{self.instance}")

    def _done(self, op: str, res: model.Resource, result: Result) -> None:
        self._busy = False
        if op == "start":
            if result.ok:
                self._set(res.name, "started")
                self._start_monitor(res)
            else:
                self._set(res.name, "failed")
                self._ops = deque(o for o in self._ops if o[0] != "start")   # Heartbeat: stop here
                log.error("%s: resource %s start failed: %s", self.instance, res.name,
                          result.describe(), extra={"instance": self.instance,
                                                    "resource": res.name, "op": "start"})
                self.events.failed(res, "start", result.describe())
        else:
            self._set(res.name, "stopped")
            if not result.ok:
                log.error("%s: resource %s stop failed: %s", self.instance, res.name,
                          result.describe(), extra={"instance": self.instance,
                                                    "resource": res.name, "op": "stop"})
                self.events.failed(res, "stop", result.describe())
        self._next()

    def _set(self, name: str, state: str) -> None:
        old = self.state.get(name)
        self.state[name] = state
        up = state == "started"
        if (old == "started") != up:
            self.events.changed(name, up)

    # ------------------------------------------------------------------ monitors
    def _start_monitor(self, res: model.Resource) -> None:
        if not res.monitored:
            return
        self._monitor_fails[res.name] = 0
        self._monitors[res.name] = self.loop.call_later(res.monitor_interval, self._monitor, res)

    def _stop_monitor(self, name: str) -> None:
        timer = self._monitors.pop(name, None)
        if timer is not None:
            timer.cancel()
        self._monitor_fails.pop(name, None)

    def _monitor(self, res: model.Resource) -> None:
        if self.state.get(res.name) != "started" or res.name in self._monitor_busy:
            return
        if res.kind == "filesystem" and res.fs is not None:
            why = mounts.mounted(res.fs.mountpoint, res.fs.fstype)
            self._monitored(res, why is None, why or "")
            return
        self._monitor_busy.add(res.name)
        self.procs.run(res.monitor, res.monitor_timeout,
                       lambda result: self._monitor_result(res, result))

    def _monitor_result(self, res: model.Resource, result: Result) -> None:
        self._monitor_busy.discard(res.name)
        self._monitored(res, result.ok, result.describe())

    def _monitored(self, res: model.Resource, ok: bool, detail: str) -> None:
        if self.state.get(res.name) != "started" or res.name not in self._monitors:
            return                                    # stopped meanwhile
        fails = 0 if ok else self._monitor_fails.get(res.name, 0) + 1
        self._monitor_fails[res.name] = fails
        if fails and fails >= res.monitor_fall:
            self._monitors.pop(res.name, None)
            self._set(res.name, "failed")
            log.error("%s: resource %s monitor failed %d time(s) in a row: %s", self.instance,
                      res.name, fails, detail, extra={"instance": self.instance,
                                                      "resource": res.name, "op": "monitor"})
            self.events.failed(res, "monitor", detail)
            return
        if not ok:
            log.warning("%s: resource %s monitor failed (%d of %d): %s", self.instance,
                        res.name, fails, res.monitor_fall, detail,
                        extra={"instance": self.instance, "resource": res.name})
        self._monitors[res.name] = self.loop.call_later(res.monitor_interval, self._monitor, res)
