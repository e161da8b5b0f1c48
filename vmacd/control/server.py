"""The control socket (SPEC §6): asyncio unix stream server, one JSON request per line.

Robustness rules, each covered by tests/unit/test_control_server.py:
- the socket file is mode 0600; its directory is created 0700 when missing;
- a stale socket file (nobody listening) is replaced; a live one (another vmacd) is refused;
  a path that exists and is not a socket is never deleted;
- every line gets exactly one reply line, in order; garbage, non-UTF-8, non-object JSON and
  over-long lines get `{"ok": false, "error": ...}` and the connection keeps going;
- a partial last line at EOF is answered too (`printf '{"cmd":"status"}' | nc -U ...`);
- a client never blocks another (one task per connection, a cap on connections, an idle timeout);
- `stop()` closes every connection and removes the socket file it created (and only that one).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import stat

from vmacd.control.commands import Dispatcher, error

log = logging.getLogger("vmacd.control")

MAX_REQUEST = 64 * 1024     # bytes per request line
MAX_CLIENTS = 64
IDLE_TIMEOUT = 300.0        # seconds without a complete request before a client is dropped
_CHUNK = 16 * 1024


class ControlError(Exception):
    """The control socket cannot be set up; the message names the path and the cause."""


def encode_reply(reply: dict) -> bytes:
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
            raise ControlError(f"cannot create control socket directory {directory}: {exc.strerror}") from exc
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"control socket path {path} exists and is not a socket; refusing to remove it")
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


class ControlServer:
    """Serves a Dispatcher on a unix socket. `await start()`, later `await stop()`."""

    def __init__(self, path: str, dispatcher: Dispatcher, *, max_request: int = MAX_REQUEST,
                 max_clients: int = MAX_CLIENTS, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.max_request = max_request
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Bind the socket (0600) and start accepting. Raises ControlError."""
        _prepare_path(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # no window where the socket is group/world accessible
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot bind control socket {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=_CHUNK)
        log.info("control socket listening on %s", self.path)

    async def stop(self) -> None:
        """Stop accepting, close every client, remove our socket file."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file only if it is still the one we bound."""
        if self._inode is None:
            return
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        self._inode = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= self.max_clients:
            with contextlib.suppress(Exception):
                writer.write(encode_reply(error(f"too many clients (max {self.max_clients})")))
                await writer.drain()
            writer.close()
            return
        if task is not None:
            self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # never let one client take the server down
            log.exception("control client failed")
        finally:
            if task is not None:
                self._clients.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Split the byte stream into lines; answer each; skip the rest of over-long lines."""
        buf = bytearray()
        discarding = False  # inside an over-long line whose error was already sent
        while True:
            chunk = await asyncio.wait_for(reader.read(_CHUNK), self.idle_timeout)
            if not chunk:
                if buf and not discarding:
                    await self._answer(bytes(buf), writer)
                return
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                if discarding:
                    discarding = False
                    continue
                await self._answer(line, writer)
            if len(buf) > self.max_request and not discarding:
                await self._send(writer, error(f"request too large (max {self.max_request} bytes)"))
                discarding = True
            if discarding:
                buf.clear()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_request:
            reply = error(f"request too large (max {self.max_request} bytes)")
        else:
            reply = await self.dispatcher.handle_line(line)
        await self._send(writer, reply)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict) -> None:
        writer.write(encode_reply(reply))
        await writer.drain()
