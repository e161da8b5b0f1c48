"""The daemon's event loop: epoll readiness, a timer heap with microsecond waits, signals.

vmacd runs one thread and one loop. It does not use asyncio: the daemon needs timers that fire on
time (epoll rounds its timeout up to the next millisecond; here the wait is a `select()` on the
epoll fd, whose timeout is a timeval in microseconds), a cheap wake-up per received packet, and no
import of ssl, futures or streams it never uses (asyncio costs the daemon 5-9 MB of RSS).

    loop = Loop()
    t = loop.call_at(loop.time() + 0.1, fn, arg)     # Timer; t.cancel()
    loop.add_reader(sock.fileno(), on_readable)      # level-triggered
    loop.add_signal_handler(signal.SIGTERM, stop)    # runs on the loop, not in the handler
    loop.run()                                       # until loop.stop()

Callbacks run one at a time in the loop's thread; an exception in one is logged and the loop goes
on. Order within one iteration: ready I/O, then due timers (earliest first), then `call_soon`.
`on_late(seconds)` (optional) sees how late each timer fired: the stall measure.
"""
from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Generic, TypeVar, TypeVarTuple

log = logging.getLogger("vmacd.loop")

_READ = select.EPOLLIN | select.EPOLLPRI | select.EPOLLERR | select.EPOLLHUP
_WRITE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
MAX_WAIT = 3600.0        # seconds: the longest single wait (no timer armed)

Ts = TypeVarTuple("Ts")
T = TypeVar("T")
#: A stored callback and its arguments; the call_*/add_* methods check that they fit each other.
_Call = tuple[Callable[..., object], tuple[object, ...]]


class Timer:
    """One scheduled call; `cancel()` is idempotent. `when` is loop time (monotonic seconds).

    `slack` (s, default 0): the timer may run that much early when the loop is awake anyway for
    a timer due before it, so timers due at about the same moment share one wake-up."""

    __slots__ = ("args", "cancelled", "fn", "slack", "when")

    def __init__(self, when: float, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.slack = 0.0

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """A single-threaded event loop (see the module docstring)."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._epfd = [self._ep.fileno()]
        self._readers: dict[int, _Call] = {}
        self._writers: dict[int, _Call] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._soon: list[_Call] = []
        self._signals: dict[int, Callable[[], None]] = {}
        self._sig_pipe: tuple[int, int] | None = None    # (read, write): the signal wakeup fd
        self._old_wakeup: int | None = None
        self._running = False
        self.on_late: Callable[[float], None] | None = None
        self.time = time.monotonic

    # ------------------------------------------------------------------ scheduling
    def call_at(self, when: float, fn: Callable[[*Ts], object], *args: *Ts) -> Timer:
        timer = Timer(when, fn, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, fn: Callable[[*Ts], object], *args: *Ts) -> Timer:
        return self.call_at(time.monotonic() + delay, fn, *args)

    def call_soon(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """Run `fn(*args)` at the end of the current (or next) iteration."""
        self._soon.append((fn, args))

    # ------------------------------------------------------------------ file descriptors
    def add_reader(self, fd: int, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """Call `fn(*args)` while `fd` is readable (replaces an earlier reader of `fd`)."""
        self._readers[fd] = (fn, args)
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        self._writers[fd] = (fn, args)
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def _update(self, fd: int) -> None:
        mask = (_READ if fd in self._readers else 0) | (_WRITE if fd in self._writers else 0)
        try:
            if mask:
                try:
                    self._ep.modify(fd, mask)
                except FileNotFoundError:
                    self._ep.register(fd, mask)
            else:
                self._ep.unregister(fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBADF) or mask:
                raise

    # ------------------------------------------------------------------ signals
    def add_signal_handler(self, sig: int, fn: Callable[[], None]) -> None:
        """Run `fn()` on the loop when `sig` arrives (the Python handler only wakes the loop)."""
        if self._sig_pipe is None:
            sig_r, sig_w = self._sig_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._old_wakeup = signal.set_wakeup_fd(sig_w, warn_on_full_buffer=False)
            self.add_reader(sig_r, self._read_signals, sig_r)
        self._signals[sig] = fn
        signal.signal(sig, _wake_only)

    def remove_signal_handler(self, sig: int) -> None:
        if self._signals.pop(sig, None) is not None:
            signal.signal(sig, signal.SIG_DFL)

    def _read_signals(self, sig_r: int) -> None:
        try:
            data = os.read(sig_r, 512)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):     # each signal once per read, in arrival order
            fn = self._signals.get(signum)
            if fn is not None:
                self._call(fn, ())

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run until `stop()`."""
        self._running = True
        while self._running:
            self.run_once()

    def stop(self) -> None:
        self._running = False

    def run_once(self, max_wait: float = MAX_WAIT) -> None:
        """Wait for I/O or the next timer (at most `max_wait` s), then run what is due."""
        timeout = 0.0 if self._soon else max_wait
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if timers and not self._soon:
            timeout = min(max(timers[0][0] - time.monotonic(), 0.0), max_wait)
        self._dispatch(self._wait(timeout))
        now = time.monotonic()
        on_late = self.on_late
        while timers and (timers[0][0] <= now or timers[0][0] - timers[0][2].slack <= now):
            _when, _seq, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            timer.cancelled = True              # fired: a later cancel() is a no-op
            if on_late is not None and timer.when <= now:
                on_late(now - timer.when)
            self._call(timer.fn, timer.args)
        if self._soon:
            soon, self._soon = self._soon, []
            for fn, args in soon:
                self._call(fn, args)

    def _wait(self, timeout: float) -> list[tuple[int, int]]:
        if timeout > 0:
            try:                                # a timeval wait: microseconds, not epoll's ms
                ready, _, _ = select.select(self._epfd, (), (), timeout)
            except InterruptedError:
                return []
            if not ready:
                return []
        try:
            return self._ep.poll(0)
        except InterruptedError:
            return []

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        for fd, mask in events:
            if mask & _READ:
                entry = self._readers.get(fd)
                if entry is not None:
                    self._call(*entry)
            if mask & _WRITE:
                entry = self._writers.get(fd)
                if entry is not None:
                    self._call(*entry)

    @staticmethod
    def _call(fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            fn(*args)
        except Exception:      # one failing callback must not stop the daemon
            log.exception("callback %s failed", getattr(fn, "__qualname__", fn))

    def close(self) -> None:
        """Release the epoll fd and the signal pipe (handlers back to their defaults)."""
        for sig in list(self._signals):
            self.remove_signal_handler(sig)
        if self._sig_pipe is not None:
            sig_r, sig_w = self._sig_pipe
            signal.set_wakeup_fd(self._old_wakeup if self._old_wakeup is not None else -1)
            self.remove_reader(sig_r)
            os.close(sig_r)
            os.close(sig_w)
            self._sig_pipe = None
        self._ep.close()


def _wake_only(_signum: int, _frame: object) -> None:
    """The Python-level handler: the wakeup fd already carries the signal number."""


class Deferred(Generic[T]):
    """A result that arrives later (a reload waiting for handovers): `then(fn)` / `resolve(v)`."""

    __slots__ = ("_callbacks", "_result")

    def __init__(self) -> None:
        self._result: tuple[T] | None = None     # (value,) once resolved
        self._callbacks: list[Callable[[T], object]] = []

    def then(self, fn: Callable[[T], object]) -> None:
        if self._result is not None:
            fn(self._result[0])
        else:
            self._callbacks.append(fn)

    def resolve(self, value: T) -> None:
        if self._result is not None:
            return
        self._result = (value,)
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(value)
