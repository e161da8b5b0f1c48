"""sd_notify: real datagram sockets, path and abstract, as systemd would listen."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest

from vmacd.linux.sdnotify import Notifier, socket_address
from vmacd.loop import Loop


@pytest.fixture
def listener():
    d = tempfile.mkdtemp(prefix="vmacd-sd-", dir="/tmp")
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    yield path, s
    s.close()
    shutil.rmtree(d, ignore_errors=True)


def test_ready_status_stopping_watchdog(listener):
    path, s = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("2 instances")
    assert s.recv(4096) == b"READY=1\nSTATUS=2 instances"
    assert n.status("lan master\nwan backup")
    assert s.recv(4096) == b"STATUS=lan master wan backup"
    assert n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert s.recv(4096) == b"STOPPING=1"
    n.close()


def test_abstract_socket():
    name = f"vmacd-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(2)
    try:
        assert socket_address("@" + name) == b"\0" + name.encode()
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert s.recv(4096) == b"READY=1"
    finally:
        s.close()


def test_without_systemd_everything_is_a_quiet_no_op():
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False
    assert n.watchdog_interval() is None


def test_unreachable_socket_returns_false_and_does_not_raise(caplog):
    n = Notifier.from_env({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert n.ready() is False
    assert n.ready() is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.getMessage()]) == 1


def test_watchdog_interval_is_half_of_watchdog_usec():
    pid = str(os.getpid())
    assert Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5000000"}).watchdog_interval() == 2.5
    assert Notifier.from_env({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}).watchdog_interval() == 1.0
    assert Notifier.from_env({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert Notifier.from_env({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier.from_env({"WATCHDOG_USEC": "soon"}).watchdog_interval() is None


def test_unset_removes_the_variables(monkeypatch, listener):
    path, _ = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    n = Notifier.from_env(unset=True)
    assert n.enabled and n.watchdog_interval() == 0.5
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ


def test_run_watchdog_pings_from_the_loop(listener):
    path, s = listener
    s.setblocking(False)
    n = Notifier(path, watchdog_usec=20_000)           # ping every 10 ms
    loop = Loop()
    handle = n.run_watchdog(loop)
    loop.call_later(0.1, loop.stop)
    loop.run()
    handle.cancel()
    loop.call_later(0.05, loop.stop)                   # cancelled: no more pings
    loop.run()
    loop.close()
    pings = []
    while True:
        try:
            pings.append(s.recv(100))
        except BlockingIOError:
            break
    assert len(pings) >= 4 and set(pings) == {b"WATCHDOG=1"}
    assert Notifier(path).run_watchdog(Loop()) is None      # no watchdog configured
