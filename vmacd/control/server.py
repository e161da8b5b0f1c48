"""The control socket: a unix stream server on the daemon's loop, one JSON request per line.

Robustness rules, each covered by tests/unit/test_control_server.py:
- the socket file is mode 0600; its directory is created 0700 when missing;
- a stale socket file (nobody listening) is replaced; a live one (another vmacd) is refused;
  a path that exists and is not a socket is never deleted;
- every line gets exactly one reply line, in order (framing.LineFramer); garbage, non-UTF-8,
  non-object JSON and over-long lines get `{"ok": false, "error": ...}` and the connection
  keeps going;
- a partial last line at EOF is answered too (`printf '{"cmd":"status"}' | nc -U ...`);
- no client blocks another or the daemon: sockets are non-blocking, replies are buffered, a
  client idle for IDLE_TIMEOUT is dropped, and when MAX_CLIENTS are connected the longest idle
  one makes room for a new one (idle connections can never lock out `vmacctl`);
- `stop()` closes every connection and removes the socket file it created (and only that one).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import socket
import stat
from collections import deque

from vmacd.control.commands import Dispatcher, JsonObject, error
from vmacd.control.framing import LineFramer, Oversize
from vmacd.loop import Loop, Timer

log = logging.getLogger("vmacd.control")

MAX_REQUEST = 64 * 1024     # bytes per request line
MAX_CLIENTS = 64
IDLE_TIMEOUT = 30.0         # seconds without a request (or a pending reply) before a client goes
_CHUNK = 16 * 1024


class ControlError(Exception):
    """The control socket cannot be set up; the message names the path and the cause."""


def encode_reply(reply: JsonObject) -> bytes:
    """One reply line; anything json cannot encode is rendered with str()."""
    return json.dumps(reply, default=str, separators=(",", ":")).encode() + b"\n"


def _prepare_path(path: str) -> None:
    """Create the directory (0700) if missing and clear a stale socket file."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        except OSError as exc:
            raise ControlError(f"cannot create control socket directory {directory}: "
                               f"{exc.strerror}") from exc
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"control socket path {path} exists and is not a socket; "
                           "refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ControlError(f"control socket {path}: {exc.strerror}") from exc
        os.unlink(path)  # stale: left by a daemon that died
        log.info("removed stale control socket %s", path)
        return
    finally:
        probe.close()
    raise ControlError(f"control socket {path} is in use: another vmacd is running")


class _Client:
    __slots__ = ("busy", "eof", "framer", "last", "lines", "outbuf", "sock", "timer")

    def __init__(self, sock: socket.socket, max_request: int) -> None:
        self.sock = sock
        self.framer = LineFramer(max_request)
        self.outbuf = bytearray()
        self.lines: deque[bytes | Oversize] = deque()
        self.busy = False            # a request is being answered (replies stay in order)
        self.eof = False
        self.timer: Timer | None = None
        self.last = 0.0


class ControlServer:
    """Serves a Dispatcher on a unix socket. `start()`, later `stop()`."""

    def __init__(self, loop: Loop, path: str, dispatcher: Dispatcher, *,
                 max_request: int = MAX_REQUEST, max_clients: int = MAX_CLIENTS,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.loop = loop
        self.path = path
        self.dispatcher = dispatcher
        self.max_request = max_request
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: dict[int, _Client] = {}

    def start(self) -> None:
        """Bind the socket (0600) and start accepting. Raises ControlError."""
        _prepare_path(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)  # no window where the socket is group/world accessible
        try:
            sock.bind(self.path)
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot bind control socket {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        sock.setblocking(False)
        self._sock = sock
        self.loop.add_reader(sock.fileno(), self._accept)
        log.info("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop accepting, close every client, remove our socket file."""
        for client in list(self._clients.values()):
            self._close(client)
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._inode is not None:
            with contextlib.suppress(OSError):
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            self._inode = None

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("control socket accept failed: %s", exc.strerror)
                return
            if len(self._clients) >= self.max_clients:
                idle = [c for c in self._clients.values() if not c.busy]
                if idle:
                    self._close(min(idle, key=lambda c: c.last))
                else:
                    with contextlib.suppress(OSError):
                        conn.send(encode_reply(error(f"too many clients (max {self.max_clients})")))
                    conn.close()
                    continue
            conn.setblocking(False)
            client = _Client(conn, self.max_request)
            self._clients[conn.fileno()] = client
            self._touch(client)
            self.loop.add_reader(conn.fileno(), self._readable, client)

    def _touch(self, client: _Client) -> None:
        client.last = self.loop.time()
        if client.timer is not None:
            client.timer.cancel()
        client.timer = self.loop.call_later(self.idle_timeout, self._idle, client)

    def _idle(self, client: _Client) -> None:
        if client.busy:                     # waiting for our answer is not idleness
            self._touch(client)
            return
        self._close(client)

    def _close(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd in self._clients:
            del self._clients[fd]
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        if client.timer is not None:
            client.timer.cancel()
        client.sock.close()

    def _readable(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        self._touch(client)
        if not chunk:
            client.eof = True
            self.loop.remove_reader(client.sock.fileno())
            client.lines.extend(client.framer.close())
        else:
            client.lines.extend(client.framer.feed(chunk))
        self._serve(client)

    def _serve(self, client: _Client) -> None:
        """Answer the next queued line unless an answer is still pending (order is kept)."""
        while not client.busy and client.lines:
            line = client.lines.popleft()
            client.busy = True
            if isinstance(line, Oversize):
                self._reply(client, error(f"request too large (max {line.limit} bytes)"))
                continue
            self.dispatcher.handle_line(line, functools.partial(self._reply, client))
        if client.eof and not client.busy and not client.lines and not client.outbuf:
            self._close(client)

    def _reply(self, client: _Client, reply: JsonObject) -> None:
        client.busy = False
        if client.sock.fileno() < 0:
            return                            # closed while the answer was on its way
        client.outbuf += encode_reply(reply)
        self._flush(client)
        self.loop.call_soon(self._serve, client)

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(client)
            return
        del client.outbuf[:sent]
        fd = client.sock.fileno()
        if client.outbuf:
            self.loop.add_writer(fd, self._flush, client)
        else:
            self.loop.remove_writer(fd)
            if client.eof and not client.busy and not client.lines:
                self._close(client)
