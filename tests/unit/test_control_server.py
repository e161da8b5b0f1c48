"""The control socket: a fake DaemonAPI behind a real unix socket, on a real vmacd loop."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from vmacd.control.commands import Dispatcher, ReloadError
from vmacd.control.server import ControlError, ControlServer
from vmacd.loop import Deferred, Loop

STATUS = {
    "node": "r1", "version": "0.1.0",
    "instances": [{
        "name": "lan", "vrid": 51, "interface": "eth1", "family": 4, "version": 3,
        "state": "master", "priority": 150, "effective_priority": 100, "vmac": "00:00:5e:00:01:33",
        "vips": ["192.0.2.254/24"], "master": {"src": "192.0.2.1", "priority": 150, "interval_ms": 100},
        "timers": {"adver_interval_ms": 100, "master_down_interval_ms": 361, "skew_ms": 41,
                   "next_timer_in_ms": 57},
        "since": 1_700_000_000.0, "maintenance": False, "trackers": {"eth0": False},
    }, {
        "name": "wan", "vrid": 7, "interface": "eth2", "family": 6, "version": 3,
        "state": "backup", "priority": 100, "effective_priority": 100, "vmac": "00:00:5e:00:02:07",
        "vips": ["2001:db8::1/64"], "master": None,
        "timers": {"adver_interval_ms": 1000, "master_down_interval_ms": 3609, "skew_ms": 609,
                   "next_timer_in_ms": 1200},
        "since": 1_700_000_100.0, "maintenance": True, "trackers": {},
    }],
}


class FakeDaemon:
    """A DaemonAPI with observable effects."""

    def __init__(self) -> None:
        self.maint: dict[str, bool] = {"lan": False, "wan": True}
        self.reloads = 0
        self.refuse: str | None = None
        self.reload_delay = 0.0
        self.running_reloads = 0
        self.max_parallel_reloads = 0
        self.crash_status = False
        self.loop: Loop | None = None

    def status(self) -> dict:
        if self.crash_status:
            raise RuntimeError("boom")
        return json.loads(json.dumps(STATUS))

    def history(self) -> list[dict]:
        return [{"time": 1_700_000_000.25, "instance": "lan", "from": "backup", "to": "master",
                 "reason": "master_down timer expired"},
                {"time": 1_700_000_100.5, "instance": "wan", "from": "init", "to": "backup",
                 "reason": "startup"}]

    def maintenance(self, instance: str, on: bool, force: bool, persist: bool) -> dict:
        if instance not in self.maint:
            raise KeyError(instance)
        self.maint[instance] = on
        return {"instance": instance, "maintenance": on, "state": "backup" if on else "master"}

    def clear(self, instance: str) -> dict:
        if instance not in self.maint:
            raise KeyError(instance)
        return {"instance": instance, "cleared": []}

    def reload(self) -> Deferred | dict:
        if self.refuse:
            raise ReloadError(self.refuse)
        self.running_reloads += 1
        self.max_parallel_reloads = max(self.max_parallel_reloads, self.running_reloads)
        answer = Deferred()

        def done() -> None:
            self.running_reloads -= 1
            self.reloads += 1
            answer.resolve({"added": ["dmz"], "removed": [], "changed": ["wan"],
                            "unchanged": ["lan"]})

        if self.loop is None or not self.reload_delay:
            done()
        else:
            self.loop.call_later(self.reload_delay, done)
        return answer


@pytest.fixture
def sockdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="vmacd-ctl-", dir="/tmp")  # short: AF_UNIX paths are <= 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def running_server(path: str, daemon: FakeDaemon | None = None, **kw) -> Iterator[ControlServer]:
    """A ControlServer on its own vmacd loop in a thread (for blocking clients like vmacctl).

    The loop is single-threaded: the test stops it through a pipe the loop reads."""
    loop = Loop()
    daemon = daemon or FakeDaemon()
    daemon.loop = loop
    server = ControlServer(loop, path, Dispatcher(daemon), **kw)
    server.start()
    stop_r, stop_w = os.pipe()

    def stop() -> None:
        loop.remove_reader(stop_r)
        server.stop()
        loop.stop()

    loop.add_reader(stop_r, stop)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        os.write(stop_w, b"\0")
        thread.join(5)
        loop.close()
        os.close(stop_r)
        os.close(stop_w)


def ask(path: str, payload: bytes, replies: int = 1, shut: bool = False) -> list[dict]:
    """Blocking client: send raw bytes, read `replies` lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(payload)
        if shut:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        while buf.count(b"\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def test_socket_mode_0600_and_dir_created_0700(sockdir):
    path = os.path.join(sockdir, "run", "vmacd.sock")
    with running_server(path):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not os.path.exists(path), "socket file removed on stop"


def test_round_trips(sockdir):
    path = os.path.join(sockdir, "s")
    daemon = FakeDaemon()
    with running_server(path, daemon):
        status = ask(path, b'{"cmd": "status"}\n')[0]
        assert status["ok"] is True and status["node"] == "r1"
        assert [i["name"] for i in status["instances"]] == ["lan", "wan"]
        hist = ask(path, b'{"cmd":"history"}\n')[0]
        assert hist["ok"] and [h["to"] for h in hist["history"]] == ["master", "backup"]
        m = ask(path, b'{"cmd":"maintenance","instance":"lan","on":true}\n')[0]
        assert m == {"ok": True, "instance": "lan", "maintenance": True, "state": "backup"}
        c = ask(path, b'{"cmd":"clear","instance":"lan"}\n')[0]
        assert c == {"ok": True, "instance": "lan", "cleared": []}
        assert daemon.maint["lan"] is True
        r = ask(path, b'{"cmd":"reload"}\n')[0]
        assert r["ok"] and r["added"] == ["dmz"] and daemon.reloads == 1
        daemon.refuse = "vmacd.toml: instance[lan].vrid: must be 1..255, got 300"
        r = ask(path, b'{"cmd":"reload"}\n')[0]
        assert r == {"ok": False,
                     "error": "reload refused: vmacd.toml: instance[lan].vrid: must be 1..255, got 300"}


def test_malformed_requests_get_errors_in_order_and_server_keeps_serving(sockdir):
    path = os.path.join(sockdir, "s")
    with running_server(path, max_request=1000):
        bad = [
            b"garbage\n",
            b"\xff\xfe\x00not utf8\n",
            b"[1, 2, 3]\n",
            b'"just a string"\n',
            b"null\n",
            b"\n",
            b'{"cmd": 5}\n',
            b'{"cmd": "nope"}\n',
            b'{"cmd": "maintenance", "instance": "lan", "on": "yes"}\n',
            b'{"cmd": "maintenance", "instance": "ghost", "on": false}\n',
            b"x" * 5000 + b"\n",                       # over the request limit
            b"[" * 100000 + b"\n",                     # (also over the limit)
        ]
        replies = ask(path, b"".join(bad) + b'{"cmd":"status"}\n', replies=len(bad) + 1)
        assert len(replies) == len(bad) + 1
        assert all(r["ok"] is False and isinstance(r["error"], str) for r in replies[:-1])
        errors = [r["error"] for r in replies[:-1]]
        assert "not valid JSON" in errors[0]
        assert "UTF-8" in errors[1]
        assert "JSON object" in errors[2] and "JSON object" in errors[3] and "JSON object" in errors[4]
        assert errors[5] == "empty request"
        assert "cmd" in errors[6] and "unknown command 'nope'" in errors[7]
        assert 'field "on" must be true or false' in errors[8]
        assert errors[9] == "unknown instance 'ghost'"
        assert "too large" in errors[10] and "too large" in errors[11]
        assert replies[-1]["ok"] is True
        # and a new client is still served
        assert ask(path, b'{"cmd":"status"}\n')[0]["ok"] is True


def test_huge_line_in_small_chunks_is_skipped_to_its_end(sockdir):
    path = os.path.join(sockdir, "s")
    with running_server(path, max_request=4096):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            for _ in range(100):                       # 400 kB without a newline
                s.sendall(b"{" * 4000)
            s.sendall(b'}\n{"cmd":"history"}\n')
            f = s.makefile("rb")
            first, second = json.loads(f.readline()), json.loads(f.readline())
        assert first["ok"] is False and "too large" in first["error"]
        assert second["ok"] is True and "history" in second


def test_half_line_then_rest_and_partial_last_line_at_eof(sockdir):
    path = os.path.join(sockdir, "s")
    with running_server(path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b'{"cmd": "sta')
            s.sendall(b'tus"}\r\n')
            assert json.loads(s.makefile("rb").readline())["ok"] is True
        # printf '{"cmd":"history"}' | nc -U: no newline, then EOF
        assert ask(path, b'{"cmd":"history"}', shut=True)[0]["ok"] is True
        assert ask(path, b'{"cmd":', shut=True)[0]["ok"] is False


def test_handler_bug_is_an_error_reply_not_a_crash(sockdir):
    path = os.path.join(sockdir, "s")
    daemon = FakeDaemon()
    daemon.crash_status = True
    with running_server(path, daemon):
        r = ask(path, b'{"cmd":"status"}\n')[0]
        assert r["ok"] is False and "internal error" in r["error"] and "boom" in r["error"]
        daemon.crash_status = False
        assert ask(path, b'{"cmd":"status"}\n')[0]["ok"] is True


def _client(path: str, payload: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    if payload:
        s.sendall(payload)
    return s


def test_many_clients_and_an_idle_one_does_not_block_them(sockdir):
    path = os.path.join(sockdir, "s")
    with running_server(path):
        idle = _client(path, b'{"cmd": "sta')           # half a request, then silence
        clients = [_client(path, b'{"cmd":"status"}\n{"cmd":"history"}\n') for _ in range(50)]
        for c in clients:
            f = c.makefile("rb")
            a, b = json.loads(f.readline()), json.loads(f.readline())
            assert a["ok"] and b["ok"] and "history" in b
            c.close()
        idle.close()
    assert not os.path.exists(path)


def test_idle_clients_make_room_and_time_out(sockdir):
    """Connections that never send a request cannot lock vmacctl out: at the cap the longest
    idle one is dropped for a new client, and every idle one goes after idle_timeout."""
    path = os.path.join(sockdir, "s")
    with running_server(path, max_clients=2, idle_timeout=0.3):
        idle = [_client(path) for _ in range(2)]
        time.sleep(0.05)
        c = _client(path, b'{"cmd":"status"}\n')
        assert json.loads(c.makefile("rb").readline())["ok"] is True      # served at once
        assert idle[0].recv(10) == b""                                     # the oldest made room
        assert idle[1].recv(10) == b""                                     # timed out
        c.close()


def test_concurrent_reloads_are_serialised(sockdir):
    path = os.path.join(sockdir, "s")
    daemon = FakeDaemon()
    daemon.reload_delay = 0.05
    with running_server(path, daemon):
        clients = [_client(path, b'{"cmd":"reload"}\n') for _ in range(4)]
        replies = [json.loads(c.makefile("rb").readline()) for c in clients]
        for c in clients:
            c.close()
    assert all(r["ok"] for r in replies)
    assert daemon.reloads == 4 and daemon.max_parallel_reloads == 1


def test_stale_socket_is_replaced(sockdir):
    path = os.path.join(sockdir, "s")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()                                      # file left behind, nobody listening
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with running_server(path):
        assert ask(path, b'{"cmd":"status"}\n')[0]["ok"] is True


def test_live_socket_and_non_socket_are_refused(sockdir):
    path = os.path.join(sockdir, "s")
    with running_server(path):
        with pytest.raises(ControlError, match="in use"):
            ControlServer(Loop(), path, Dispatcher(FakeDaemon())).start()
        assert ask(path, b'{"cmd":"status"}\n')[0]["ok"] is True   # the first one is untouched
    regular = os.path.join(sockdir, "file")
    with open(regular, "w") as f:
        f.write("keep me")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(Loop(), regular, Dispatcher(FakeDaemon())).start()
    with open(regular) as f:
        assert f.read() == "keep me"


def test_stop_leaves_a_socket_that_is_not_ours(sockdir):
    path = os.path.join(sockdir, "s")
    loop = Loop()
    server = ControlServer(loop, path, Dispatcher(FakeDaemon()))
    server.start()
    os.unlink(path)                                # someone else took the path over
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    server.stop()
    assert os.path.exists(path)
    other.close()
    loop.close()


def test_unwritable_directory_is_a_clear_error(sockdir):
    blocker = os.path.join(sockdir, "notadir")
    open(blocker, "w").close()
    with pytest.raises(ControlError, match="cannot create control socket directory"):
        ControlServer(Loop(), os.path.join(blocker, "sub", "s"), Dispatcher(FakeDaemon())).start()
