"""Child processes on the asyncio loop: track scripts, notify scripts, resource commands.

Every command runs in its own session (process group) so a timeout kills the whole group
(the script and whatever it started), never the daemon. Nothing here blocks the loop.

- `ScriptRunner`: one periodic track script (interval, timeout, rise, fall); calls `on_change(up)`
  when `rise` consecutive successes or `fall` consecutive failures flip the state. A timeout or
  a command that cannot start counts as a failure.
- `SerialRunner`: per key (instance or sync group) a FIFO; commands of one key run one at a
  time in submission (= transition) order, each with its timeout, and each result is handed to
  its callback (a resource start failure lets the daemon release the group).
- `notify_argv()`: keepalived-compatible notify arguments ``TYPE NAME STATE PRIORITY``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("vmacd.linux.procs")
NOTIFY_TYPES = ("INSTANCE", "GROUP")
NOTIFY_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


@dataclass(frozen=True)
class Result:
    """How one command ended. `ok` only for exit status 0 within the timeout."""

    argv: tuple[str, ...]
    returncode: int | None      # None: timed out or could not start
    timed_out: bool
    duration: float             # seconds
    error: str = ""             # why it could not start, or "timeout after Ns"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def notify_argv(script: str | Sequence[str], kind: str, name: str, state: str,
                priority: int) -> list[str]:
    """``script TYPE NAME STATE PRIORITY`` (keepalived's notify convention)."""
    if kind not in NOTIFY_TYPES or state not in NOTIFY_STATES:
        raise ValueError(f"notify TYPE/STATE must be {NOTIFY_TYPES}/{NOTIFY_STATES}, "
                         f"got {kind}/{state}")
    base = [script] if isinstance(script, str) else list(script)
    return [*base, kind, name, state, str(priority)]


async def run_command(argv: Sequence[str], timeout: float) -> Result:
    """Run `argv` (no shell) with stdin/stdout/stderr on /dev/null; kill its group on timeout."""
    start = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return Result(tuple(argv), None, False, time.monotonic() - start,
                      f"cannot run {argv[0]}: {exc.strerror}")
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return Result(tuple(argv), None, True, time.monotonic() - start,
                      f"timeout after {timeout:g}s")
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 1)      # reap it; the loop may be closing
        raise
    return Result(tuple(argv), rc, False, time.monotonic() - start)


def _safe(callback: Callable[..., object], *args: object) -> None:
    """Run a daemon callback; a bug in it is logged, never kills the runner."""
    try:
        callback(*args)
    except Exception:
        log.exception("callback %r failed", callback)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ScriptRunner:
    """A periodic track script with rise/fall hysteresis. `state` is None until decided."""

    def __init__(self, name: str, argv: Sequence[str], interval: float, timeout: float,
                 rise: int, fall: int, on_change: Callable[[str, bool], None]) -> None:
        if interval <= 0 or timeout <= 0 or rise < 1 or fall < 1:
            raise ValueError(f"track script {name}: interval/timeout > 0, rise/fall >= 1")
        self.name, self.argv = name, list(argv)
        self.interval, self.timeout = interval, timeout
        self.rise, self.fall = rise, fall
        self.on_change = on_change
        self.state: bool | None = None
        self.last: Result | None = None
        self._ok_run = 0
        self._fail_run = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the periodic loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stop the loop (a running check is killed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.feed(await run_command(self.argv, self.timeout))
            next_at = max(next_at + self.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def feed(self, result: Result) -> None:
        """Count one result and report a change of state."""
        self.last = result
        if result.ok:
            self._ok_run, self._fail_run = self._ok_run + 1, 0
            if self.state is not True and self._ok_run >= self.rise:
                self._set(True)
        else:
            self._ok_run, self._fail_run = 0, self._fail_run + 1
            if self.state is not False and self._fail_run >= self.fall:
                self._set(False)

    def _set(self, up: bool) -> None:
        self.state = up
        _safe(self.on_change, self.name, up)


@dataclass
class _Job:
    argv: list[str]
    timeout: float
    on_done: Callable[[Result], None] | None


class SerialRunner:
    """Per-key FIFO of commands; one command per key at a time, keys run in parallel."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self.results: list[tuple[str, Result]] = []      # newest last, bounded
        self.max_results = 200

    def submit(self, key: str, argv: Sequence[str], timeout: float,
               on_done: Callable[[Result], None] | None = None) -> None:
        """Queue `argv` for `key`; `on_done(result)` runs after it ends."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._work(key, queue), name=f"serial:{key}")
        queue.put_nowait(_Job(list(argv), timeout, on_done))

    def pending(self, key: str) -> int:
        """Commands of `key` queued or running."""
        queue = self._queues.get(key)
        return 0 if queue is None else int(getattr(queue, "_unfinished_tasks", queue.qsize()))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queue is empty (e.g. stop commands before exit)."""
        await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())),
                               timeout)

    async def close(self) -> None:
        """Cancel the workers (a running command is killed with its group)."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()

    async def _work(self, key: str, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                result = await run_command(job.argv, job.timeout)
                self.results.append((key, result))
                del self.results[:-self.max_results]
                if job.on_done is not None:
                    _safe(job.on_done, result)
            finally:
                queue.task_done()
