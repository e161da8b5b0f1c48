"""Tracked objects: interfaces (netlink events), scripts (rise/fall), files (integer content).

`Trackers` turns each observation into `TrackChanged(name, up, weight)` inputs for the instances
that track the object. Names carry their kind: `if:eth0`, `script:httpd`, `file:/run/x`.
Interfaces are pushed by the daemon's link watch (never polled); scripts run through
`linux.procs.Processes` without blocking the loop; files are read once a second (keepalived's
track_file semantics: the integer content times the weight shifts the priority, see groups.py).

A track script runs on every node all the time (keepalived's vrrp_script): it is for things every
node has — a link, a route, a local daemon. A service only the master runs is a resource with a
`monitor` (see vmacd/resources.py).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from vmacd.config import model
from vmacd.core import groups
from vmacd.core.events import TrackChanged, TrackRemoved
from vmacd.linux.procs import Processes, Result
from vmacd.loop import Loop, Timer

log = logging.getLogger("vmacd.tracking")

FILE_POLL = 1.0     # seconds between reads of a tracked file


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(64).strip()
        return int(text or "0")
    except (OSError, ValueError):
        return None


class ScriptRunner:
    """A periodic track script with rise/fall hysteresis. `state` is None until decided."""

    def __init__(self, loop: Loop, procs: Processes, script: model.TrackScript,
                 on_change: Callable[[str, bool], None]) -> None:
        self.loop, self.procs, self.script = loop, procs, script
        self.on_change = on_change
        self.state: bool | None = None
        self.last: Result | None = None
        self._ok_run = self._fail_run = 0
        self._next_at = 0.0
        self._timer: Timer | None = None
        self._running = False

    def start(self) -> None:
        if self._timer is None and not self._running:
            self._next_at = self.loop.time()
            self._timer = self.loop.call_at(self._next_at, self._run)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._running = False          # a result still on its way is ignored

    def _run(self) -> None:
        self._timer = None
        self._running = True
        s = self.script
        self.procs.run(s.command, s.timeout, self._result)

    def _result(self, result: Result) -> None:
        if not self._running:
            return
        self._running = False
        self.feed(result)
        self._next_at = max(self._next_at + self.script.interval, self.loop.time())
        self._timer = self.loop.call_at(self._next_at, self._run)

    def feed(self, result: Result) -> None:
        """Count one result and report a change of state."""
        self.last = result
        s = self.script
        if result.ok:
            self._ok_run, self._fail_run = self._ok_run + 1, 0
            if self.state is not True and self._ok_run >= s.rise:
                self._set(True)
        else:
            self._ok_run, self._fail_run = 0, self._fail_run + 1
            if self.state is not False and self._fail_run >= s.fall:
                if self.state is not None:
                    log.warning("track script %s failed: %s", s.name, result.describe(),
                                extra={"tracker": s.name})
                self._set(False)

    def _set(self, up: bool) -> None:
        self.state = up
        self.on_change(self.script.name, up)


class Trackers:
    """All trackers of the running config; `configure()` again after a reload."""

    def __init__(self, loop: Loop, procs: Processes,
                 emit: Callable[[str, object], None]) -> None:
        self.loop = loop
        self.procs = procs
        self.emit = emit
        self._ifaces: dict[str, list[tuple[str, int]]] = {}       # ifname -> [(instance, weight)]
        self._link_up: dict[str, bool] = {}
        self._scripts: dict[str, ScriptRunner] = {}
        self._script_users: dict[str, list[tuple[str, int]]] = {}
        self._files: dict[str, list[tuple[str, int]]] = {}        # path -> [(instance, weight)]
        self._file_values: dict[str, int | None] = {}
        self._names: dict[str, set[str]] = {}                     # instance -> tracker names
        self._poll: Timer | None = None

    # ------------------------------------------------------------------ configuration
    def configure(self, instances: tuple[model.Instance, ...]) -> None:
        """Take the trackers of `instances`; tell instances about trackers they lost."""
        self._ifaces, self._script_users, self._files = {}, {}, {}
        wanted: dict[str, model.TrackScript] = {}
        names: dict[str, set[str]] = {}
        for inst in instances:
            mine = names.setdefault(inst.name, set())
            for ti in inst.track_interfaces:
                self._ifaces.setdefault(ti.name, []).append((inst.name, ti.weight))
                mine.add(f"if:{ti.name}")
            for ts in inst.track_scripts:
                self._script_users.setdefault(ts.name, []).append((inst.name, ts.weight))
                wanted[ts.name] = ts.script
                mine.add(f"script:{ts.name}")
            for tf in inst.track_files:
                self._files.setdefault(tf.path, []).append((inst.name, tf.weight))
                mine.add(f"file:{tf.path}")
        for name, before in self._names.items():
            for gone in sorted(before - names.get(name, set())):
                self.emit(name, TrackRemoved(gone))
        self._names = names
        for name in list(self._scripts):
            if wanted.get(name) != self._scripts[name].script:
                self._scripts.pop(name).stop()
        for name, script in wanted.items():
            if name not in self._scripts:
                self._scripts[name] = ScriptRunner(self.loop, self.procs, script,
                                                   self._script_changed)
                self._scripts[name].start()
        if self._files and self._poll is None:
            self._poll = self.loop.call_later(FILE_POLL, self._poll_files)

    def initial(self, inst: model.Instance, link_up: Callable[[str], bool]) -> list[TrackChanged]:
        """The trackers' current view for an instance about to start.

        A script that has not passed `rise` checks yet counts as down: a node must prove its
        tracked object healthy before it may take the address (Heartbeat's rule)."""
        out = []
        for ti in inst.track_interfaces:
            up = link_up(ti.name)
            self._link_up[ti.name] = up
            out.append(TrackChanged(f"if:{ti.name}", up, ti.weight))
        for ts in inst.track_scripts:
            runner = self._scripts.get(ts.name)
            out.append(TrackChanged(f"script:{ts.name}", bool(runner and runner.state), ts.weight))
        for tf in inst.track_files:
            state = groups.file_track(f"file:{tf.path}", _read_int(tf.path) or 0, tf.weight)
            out.append(TrackChanged(state.name, state.up, state.weight))
        return out

    def current(self, inst: model.Instance, link_up: Callable[[str], bool]) -> list[TrackChanged]:
        """What `initial` says, for an instance that runs already (a reload changed weights)."""
        return self.initial(inst, link_up)

    # ------------------------------------------------------------------ observations
    def link_changed(self, ifname: str, up: bool) -> None:
        if ifname not in self._ifaces or self._link_up.get(ifname) == up:
            return
        self._link_up[ifname] = up
        for instance, weight in self._ifaces[ifname]:
            self.emit(instance, TrackChanged(f"if:{ifname}", up, weight))

    def _script_changed(self, name: str, up: bool) -> None:
        log.info("track script %s is %s", name, "up" if up else "down",
                 extra={"tracker": name, "up": up})
        for instance, weight in self._script_users.get(name, []):
            self.emit(instance, TrackChanged(f"script:{name}", up, weight))

    def _poll_files(self) -> None:
        self._poll = None
        for path, users in self._files.items():
            value = _read_int(path)
            if path in self._file_values and value == self._file_values[path]:
                continue
            self._file_values[path] = value
            for instance, weight in users:
                st = groups.file_track(f"file:{path}", value or 0, weight)
                self.emit(instance, TrackChanged(st.name, st.up, st.weight))
        if self._files:
            self._poll = self.loop.call_later(FILE_POLL, self._poll_files)

    def close(self) -> None:
        for runner in self._scripts.values():
            runner.stop()
        self._scripts.clear()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
