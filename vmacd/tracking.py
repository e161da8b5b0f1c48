"""Tracked objects (SPEC §3): interfaces (netlink events), scripts (rise/fall), files (integer).

`Trackers` turns each observation into `TrackChanged(name, up, weight)` inputs for the instances
that track the object. Names carry their kind: `if:eth0`, `script:httpd`, `file:/run/x`.
Interfaces are pushed by the daemon's link watch (never polled); scripts run through
linux.procs.ScriptRunner without blocking the loop; files are read once a second (keepalived's
track_file semantics: the integer content times the weight shifts the priority, see groups.py).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vmacd.config import model
from vmacd.core import groups
from vmacd.core.events import TrackChanged

log = logging.getLogger("vmacd.tracking")

FILE_POLL = 1.0     # seconds between reads of a tracked file


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(64).strip()
        return int(text or "0")
    except (OSError, ValueError):
        return None


class Trackers:
    """All trackers of the running config; `configure()` again after a reload."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 emit: Callable[[str, TrackChanged], None]) -> None:
        self.loop = loop
        self.emit = emit
        self._ifaces: dict[str, list[tuple[str, int]]] = {}       # ifname -> [(instance, weight)]
        self._link_up: dict[str, bool] = {}
        self._scripts: dict[str, tuple] = {}                      # name -> (TrackScript, ScriptRunner)
        self._script_users: dict[str, list[tuple[str, int]]] = {}
        self._script_up: dict[str, bool] = {}
        self._files: dict[str, list[tuple[str, int]]] = {}        # path -> [(instance, weight)]
        self._file_values: dict[str, int | None] = {}
        self._poll: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ configuration
    def configure(self, instances: tuple[model.Instance, ...]) -> None:
        self._ifaces, self._script_users, self._files = {}, {}, {}
        wanted: dict[str, model.TrackScript] = {}
        for inst in instances:
            for ti in inst.track_interfaces:
                self._ifaces.setdefault(ti.name, []).append((inst.name, ti.weight))
            for ts in inst.track_scripts:
                self._script_users.setdefault(ts.name, []).append((inst.name, ts.weight))
                wanted[ts.name] = ts.script
            for tf in inst.track_files:
                self._files.setdefault(tf.path, []).append((inst.name, tf.weight))
        self._sync_scripts(wanted)
        if self._files and self._poll is None:
            self._poll = self.loop.call_later(FILE_POLL, self._poll_files)

    def _sync_scripts(self, wanted: dict[str, model.TrackScript]) -> None:
        from vmacd.linux.procs import ScriptRunner

        for name in list(self._scripts):
            script, runner = self._scripts[name]
            if wanted.get(name) != script:
                self.loop.create_task(runner.stop())
                del self._scripts[name]
                self._script_up.pop(name, None)
        for name, script in wanted.items():
            if name not in self._scripts:
                runner = ScriptRunner(name, script.command, script.interval, script.timeout,
                                      script.rise, script.fall, self._script_changed)
                self._scripts[name] = (script, runner)
                runner.start()

    def initial(self, inst: model.Instance, link_up: Callable[[str], bool]) -> list[TrackChanged]:
        """The trackers' current view for an instance about to start.

        A script that has not passed `rise` checks yet counts as down: a service must prove
        itself healthy before its box may take the address (Heartbeat's rule)."""
        out = []
        for ti in inst.track_interfaces:
            up = link_up(ti.name)
            self._link_up[ti.name] = up
            out.append(TrackChanged(f"if:{ti.name}", up, ti.weight))
        for ts in inst.track_scripts:
            out.append(TrackChanged(f"script:{ts.name}", self._script_up.get(ts.name, False),
                                    ts.weight))
        for tf in inst.track_files:
            state = groups.file_track(f"file:{tf.path}", _read_int(tf.path) or 0, tf.weight)
            out.append(TrackChanged(state.name, state.up, state.weight))
        return out

    # ------------------------------------------------------------------ observations
    def link_changed(self, ifname: str, up: bool) -> None:
        if ifname not in self._ifaces or self._link_up.get(ifname) == up:
            return
        self._link_up[ifname] = up
        for instance, weight in self._ifaces[ifname]:
            self._emit(instance, TrackChanged(f"if:{ifname}", up, weight))

    def _script_changed(self, name: str, up: bool) -> None:
        self._script_up[name] = up
        log.info("track script %s is %s", name, "up" if up else "down",
                 extra={"tracker": name, "up": up})
        for instance, weight in self._script_users.get(name, []):
            self._emit(instance, TrackChanged(f"script:{name}", up, weight))

    def _poll_files(self) -> None:
        self._poll = None
        for path, users in self._files.items():
            value = _read_int(path)
            if value == self._file_values.get(path, 0) and path in self._file_values:
                continue
            self._file_values[path] = value
            for instance, weight in users:
                st = groups.file_track(f"file:{path}", value or 0, weight)
                self._emit(instance, TrackChanged(st.name, st.up, st.weight))
        if self._files:
            self._poll = self.loop.call_later(FILE_POLL, self._poll_files)

    def _emit(self, instance: str, ev: TrackChanged) -> None:
        self.emit(instance, ev)

    async def close(self) -> None:
        for _script, runner in self._scripts.values():
            await runner.stop()
        self._scripts.clear()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
