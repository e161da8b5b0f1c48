"""Child processes on the event loop: track scripts, notify scripts, resource commands.

Every command runs in its own session (process group) so a timeout kills the whole group (the
script and whatever it started), never the daemon. Nothing here blocks the loop: the exit is seen
through a pidfd, stderr through a non-blocking pipe, the timeout through a loop timer.

- `Processes.run(argv, timeout, on_done, key=None)`: start a command now, or — with a `key` —
  after the commands queued earlier under that key (an instance's resource and notify commands
  run one at a time, in the order its transitions asked for them).
- `Result`: how it ended, with the first lines of its standard error for the log.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vmacd.loop import Loop, Timer

STDERR_KEEP = 2048          # bytes of a command's standard error kept for the log


@dataclass(frozen=True)
class Result:
    """How one command ended. `ok` only for exit status 0 within the timeout."""

    argv: tuple[str, ...]
    returncode: int | None      # None: timed out or could not start
    timed_out: bool
    error: str = ""             # why it could not start, or "timeout after Ns"
    stderr: str = ""            # the first lines it wrote on standard error

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """One line for a failure log: why it failed and what the command said."""
        if self.error:
            why = self.error
        elif self.returncode is not None and self.returncode < 0:
            why = f"killed by signal {-self.returncode}"
        else:
            why = f"exit status {self.returncode}"
        said = " | ".join(line.strip() for line in self.stderr.splitlines()[:3] if line.strip())
        return f"{why}: {said}" if said else why


OnDone = Callable[[Result], None]


class _Job:
    __slots__ = ("argv", "err_fd", "key", "on_done", "pidfd", "proc", "stderr", "timed_out",
                 "timeout", "timer")

    def __init__(self, argv: Sequence[str], timeout: float, on_done: OnDone | None,
                 key: str | None) -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        self.on_done = on_done
        self.key = key
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfd = -1
        self.err_fd = -1
        self.stderr = bytearray()
        self.timer: Timer | None = None
        self.timed_out = False


class Processes:
    """Runs commands for the daemon on `loop`; `pending()` tells whether any is queued/running."""

    def __init__(self, loop: Loop, env: dict[str, str] | None = None) -> None:
        self.loop = loop
        self.env = env
        self._queues: dict[str, deque[_Job]] = {}
        self._running: set[_Job] = set()

    def run(self, argv: Sequence[str], timeout: float, on_done: OnDone | None = None,
            key: str | None = None) -> None:
        job = _Job(argv, timeout, on_done, key)
        if key is None:
            self._start(job)
            return
        queue = self._queues.setdefault(key, deque())
        queue.append(job)
        if len(queue) == 1:
            self._start(job)

    def pending(self, key: str | None = None) -> int:
        """Commands queued or running (for `key`, or in all)."""
        if key is not None:
            return len(self._queues.get(key, ()))
        return len(self._running) + sum(max(0, len(q) - 1) for q in self._queues.values())

    def close(self) -> None:
        """Kill whatever still runs (with its group) and forget the queues."""
        for job in list(self._running):
            _kill_group(job)
            self._reap(job, wait=True)
        self._queues.clear()

    # ------------------------------------------------------------------ internals
    def _start(self, job: _Job) -> None:
        try:
            job.proc = subprocess.Popen(
                job.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True, close_fds=True, env=self.env)
            job.pidfd = os.pidfd_open(job.proc.pid)
        except OSError as exc:
            if job.proc is not None:       # no pidfd (an old kernel): wait for it right here
                job.proc.wait()
                self._finish(job, job.proc.returncode, "")
                return
            self._finish(job, None, f"cannot run {job.argv[0] if job.argv else '?'}: "
                                    f"{exc.strerror or exc}")
            return
        # stderr=PIPE: Popen always makes the pipe, its stderr is never None here
        job.err_fd = job.proc.stderr.fileno()           # type: ignore[union-attr]
        os.set_blocking(job.err_fd, False)
        self._running.add(job)
        self.loop.add_reader(job.err_fd, self._read_stderr, job)
        self.loop.add_reader(job.pidfd, self._exited, job)
        job.timer = self.loop.call_later(job.timeout, self._expired, job)

    def _read_stderr(self, job: _Job) -> None:
        try:
            data = os.read(job.err_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:                                   # EOF: the command closed it
            self.loop.remove_reader(job.err_fd)
            return
        room = STDERR_KEEP - len(job.stderr)
        if room > 0:
            job.stderr += data[:room]

    def _expired(self, job: _Job) -> None:
        job.timed_out = True
        _kill_group(job)

    def _exited(self, job: _Job) -> None:
        self._reap(job, wait=False)

    def _reap(self, job: _Job, wait: bool) -> None:
        proc = job.proc
        assert proc is not None
        if job not in self._running:
            return
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        elif proc.poll() is None:
            return
        self._running.discard(job)
        if job.timer is not None:
            job.timer.cancel()
        self.loop.remove_reader(job.pidfd)
        os.close(job.pidfd)
        with contextlib.suppress(OSError):             # what is left in the pipe, unblocking
            while len(job.stderr) < STDERR_KEEP:
                data = os.read(job.err_fd, 4096)
                if not data:
                    break
                job.stderr += data[:STDERR_KEEP - len(job.stderr)]
        self.loop.remove_reader(job.err_fd)
        proc.stderr.close()                            # type: ignore[union-attr]  # a PIPE
        if job.timed_out:
            self._finish(job, None, f"timeout after {job.timeout:g}s", timed_out=True)
        else:
            self._finish(job, proc.returncode, "")

    def _finish(self, job: _Job, rc: int | None, error: str, timed_out: bool = False) -> None:
        result = Result(job.argv, rc, timed_out, error, job.stderr.decode("utf-8", "replace"))
        if job.on_done is not None:
            self.loop._call(job.on_done, (result,))
        if job.key is not None:
            queue = self._queues.get(job.key)
            if queue and queue[0] is job:
                queue.popleft()
                if queue:
                    self._start(queue[0])
                else:
                    del self._queues[job.key]


def _kill_group(job: _Job) -> None:
    if job.proc is None:
        return
    try:
        os.killpg(job.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError as exc:             # pragma: no cover - we start them ourselves
        if exc.errno != errno.EPERM:
            raise
