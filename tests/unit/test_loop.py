"""vmacd.loop: timers in order and on time, level-triggered readers, signals on the loop."""
from __future__ import annotations

import os
import signal
import socket
import statistics
import time

import pytest

from vmacd.loop import Deferred, Loop


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


def test_timers_fire_in_deadline_order_and_cancel_works(loop):
    seen = []
    now = loop.time()
    loop.call_at(now + 0.03, seen.append, "c")
    loop.call_at(now + 0.01, seen.append, "a")
    t = loop.call_at(now + 0.02, seen.append, "cancelled")
    loop.call_at(now + 0.02, seen.append, "b")
    loop.call_at(now + 0.04, loop.stop)
    t.cancel()
    loop.run()
    assert seen == ["a", "b", "c"]


def test_timers_fire_within_a_fraction_of_a_millisecond(loop):
    """The wait is a microsecond timeval, not epoll's millisecond (rounded up): deadlines just
    past a whole millisecond would fire ~0.9 ms late with epoll alone."""
    late = []
    loop.on_late = late.append
    for k in range(1, 21):
        loop.call_later(k * 0.003 + 0.0001, lambda: None)
    loop.call_later(0.07, loop.stop)
    loop.run()
    assert len(late) == 21
    assert statistics.median(late) < 0.0005, late


def test_a_timer_with_slack_shares_the_wake_up_of_an_earlier_one(loop):
    fired: list[tuple[str, float]] = []
    now = loop.time()
    loop.call_at(now + 0.010, lambda: fired.append(("first", loop.time())))
    second = loop.call_at(now + 0.0108, lambda: fired.append(("second", loop.time())))
    second.slack = 0.001
    third = loop.call_at(now + 0.0130, lambda: fired.append(("third", loop.time())))
    third.slack = 0.001                     # 3 ms later: outside the slack, fires on its own
    loop.call_at(now + 0.02, loop.stop)
    loop.run()
    (_, t1), (_, t2), (_, t3) = fired
    assert [name for name, _ in fired] == ["first", "second", "third"]
    assert t2 - t1 < 0.0005                             # same iteration
    assert t2 < now + 0.0108                            # early, within its slack
    assert t3 >= now + 0.0130 - 0.001                   # not pulled forward by 3 ms


def test_reader_is_level_triggered_and_removable(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    got = []

    def readable():
        got.append(a.recv(1))
        if len(got) == 3:
            loop.remove_reader(a.fileno())
            loop.call_soon(loop.stop)

    loop.add_reader(a.fileno(), readable)
    b.send(b"xyz")                       # one send, three wake-ups: level-triggered
    loop.run()
    assert got == [b"x", b"y", b"z"]
    a.close()
    b.close()


def test_a_failing_callback_does_not_stop_the_loop(loop, caplog):
    seen = []
    loop.call_soon(lambda: 1 / 0)
    loop.call_later(0.01, seen.append, "after")
    loop.call_later(0.02, loop.stop)
    loop.run()
    assert seen == ["after"]
    assert "ZeroDivisionError" in caplog.text


def test_signal_handler_runs_on_the_loop(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("usr1"), loop.stop()))
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(2.0, loop.stop)
    t0 = time.monotonic()
    loop.run()
    assert seen == ["usr1"]
    assert time.monotonic() - t0 < 1.0


def test_deferred_runs_callbacks_once_in_order():
    d = Deferred()
    seen = []
    d.then(lambda v: seen.append(("first", v)))
    d.resolve(7)
    d.resolve(8)                         # a second resolve is ignored
    d.then(lambda v: seen.append(("late", v)))
    assert seen == [("first", 7), ("late", 7)]
