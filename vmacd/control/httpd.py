"""The metrics HTTP endpoint, on the daemon's event loop (no thread, no http.server).

Just enough HTTP/1.0 and 1.1 for a scraper and a person with curl: `GET` or `HEAD` of `/metrics`
(the exposition text) and `/` (a page linking to it); 404 for other paths, 405 for other methods,
400 for a malformed request, 431 when the request head exceeds `max_request` bytes. One request
per connection (`Connection: close`).

Nothing blocks the loop: the listening socket and every connection are non-blocking and watched
with `add_reader`/`add_writer`; the page is rendered a few instances per loop iteration (a
`Render` with `step()`/`result()`); scrapes that arrive while one is being rendered share it.
Bounds: a request head must arrive within `timeout` seconds of the connect; a response must make
progress at least every `timeout` seconds; at most `max_conns` connections are open, and a new
one closes the oldest that is not waiting for a render (so idle clients cannot lock scrapers
out). After the response the server shuts down its side and drains what the client still sends,
so an unread request body never turns the close into a reset that loses the response.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from vmacd.control.exposition import CONTENT_TYPE

if TYPE_CHECKING:
    from vmacd.loop import Loop, Timer

log = logging.getLogger("vmacd.metrics")

MAX_CONNS = 16
TIMEOUT = 10.0            # seconds: request head, then each stretch without send progress
MAX_REQUEST = 8192        # bytes of request line + headers
LINGER = 2.0              # seconds to drain the client after the response
ACCEPT_BATCH = 32         # accepts per readiness callback
ACCEPT_PAUSE = 1.0        # seconds without accepting after running out of file descriptors
WRITE_BATCH = 256 << 10   # bytes sent per writability callback (a loopback send costs CPU too)
_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_REASON = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}
INDEX_PAGE = (b"<html><head><title>vmacd</title></head><body><h1>vmacd</h1>"
              b'<p><a href="/metrics">Metrics</a></p></body></html>\n')


class MetricsError(ValueError):
    """Bad `metrics_listen` value or the endpoint cannot be bound."""


class Page(Protocol):
    """A page built in steps: `step()` until True, then `chunks()`."""

    def step(self) -> bool: ...

    def chunks(self) -> list[bytes]: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` -> (host, port). Raises MetricsError with the bad value."""
    host, sep, port_s = listen.rpartition(":")
    if not sep or not host:
        raise MetricsError(f"metrics_listen: expected HOST:PORT or [IPV6]:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise MetricsError(f"metrics_listen: bad IPv6 address in {listen!r}") from None
    elif ":" in host:
        raise MetricsError(f"metrics_listen: IPv6 addresses need brackets, got {listen!r}")
    if not port_s.isdigit() or not 0 <= int(port_s) < 65536:  # 0: any free port (tests)
        raise MetricsError(f"metrics_listen: port must be 0..65535, got {listen!r}")
    return host, int(port_s)


def http_date(t: float | None = None) -> str:
    """RFC 9110 IMF-fixdate, independent of the locale."""
    g = time.gmtime(t)
    return (f"{_DAYS[g.tm_wday]}, {g.tm_mday:02d} {_MONTHS[g.tm_mon - 1]} {g.tm_year} "
            f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT")


def response(status: int, body: list[bytes], ctype: str = "text/plain; charset=utf-8",
             head_only: bool = False, version: str = "HTTP/1.1", extra: str = "") -> list[bytes]:
    """Status line, headers and (unless `head_only`) the body, as a list of byte strings."""
    length = sum(len(b) for b in body)
    head = (f"{version} {status} {_REASON[status]}\r\nDate: {http_date()}\r\nServer: vmacd\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n{extra}"
            f"Connection: close\r\n\r\n")
    return [head.encode("ascii")] + ([] if head_only else body)


def _error(status: int, version: str = "HTTP/1.1", extra: str = "") -> list[bytes]:
    return response(status, [f"{status} {_REASON[status]}\n".encode()], version=version, extra=extra)


class _Conn:
    __slots__ = (
        "born",
        "buf",
        "deadline",
        "fd",
        "head_only",
        "out",
        "sent",
        "sock",
        "state",
        "timer",
        "version",
    )
    out: list[bytes]

    def __init__(self, sock: socket.socket, now: float, timeout: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.out = []                  # what is left to send, first piece partly sent
        self.sent = 0                  # bytes of out[0] already sent
        self.state = "reading"         # -> rendering -> writing -> draining
        self.deadline = now + timeout
        self.timer: Timer | None = None
        self.born = now
        self.version = "HTTP/1.1"
        self.head_only = False


class MetricsServer:
    """Serves `page()` (a fresh Render per scrape) at /metrics on `listen`, from `loop`."""

    def __init__(self, loop: Loop, listen: str, page: Callable[[], Page], *,
                 max_conns: int = MAX_CONNS, timeout: float = TIMEOUT,
                 max_request: int = MAX_REQUEST) -> None:
        self.loop = loop
        self._page = page
        self.max_conns = max_conns
        self.timeout = timeout
        self.max_request = max_request
        self._conns: dict[int, _Conn] = {}
        self._render: Page | None = None
        self._waiting: list[_Conn] = []
        self._resume: Timer | None = None        # the timer that resumes accepting
        self._sock = self._bind(listen)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        loop.add_reader(self._sock.fileno(), self._accept)

    @staticmethod
    def _bind(listen: str) -> socket.socket:
        host, port = parse_listen(listen)
        try:
            family, stype, proto, _, addr = socket.getaddrinfo(
                host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
            sock = socket.socket(family, stype, proto)
        except OSError as exc:
            raise MetricsError(f"metrics_listen {listen}: {exc.strerror or exc}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise MetricsError(f"metrics_listen {listen}: {exc.strerror or exc}") from exc
        return sock

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:          # out of fds or memory: free one, or pause
                if exc.errno in _SHORTAGE and not self._shed():
                    self._pause_accept(exc)
                return
            sock.setblocking(False)
            if len(self._conns) >= self.max_conns and not self._shed():
                _refuse(sock)
                continue
            now = self.loop.time()
            conn = _Conn(sock, now, self.timeout)
            self._conns[conn.fd] = conn
            conn.timer = self.loop.call_at(conn.deadline, self._expire, conn)
            self.loop.add_reader(conn.fd, self._read, conn)

    def _pause_accept(self, exc: OSError) -> None:
        """Stop watching the listening socket for ACCEPT_PAUSE seconds: it stays readable while
        the connection waits in the backlog, and a level-triggered loop would spin on it."""
        log.warning("metrics endpoint: accept: %s; not accepting for %.0f s", exc.strerror, ACCEPT_PAUSE)
        self.loop.remove_reader(self._sock.fileno())
        self._resume = self.loop.call_later(ACCEPT_PAUSE, self._resume_accept)

    def _resume_accept(self) -> None:
        self._resume = None
        if self._sock.fileno() >= 0:
            self.loop.add_reader(self._sock.fileno(), self._accept)

    def _shed(self) -> bool:
        """Close the oldest connection that is not waiting for a render; False if none."""
        victims = [c for c in self._conns.values() if c.state != "rendering"]
        if not victims:
            return False
        self._close(min(victims, key=lambda c: c.born))
        return True

    def _expire(self, conn: _Conn) -> None:
        if conn.fd not in self._conns or self._conns[conn.fd] is not conn:
            return
        if self.loop.time() < conn.deadline:
            conn.timer = self.loop.call_at(conn.deadline, self._expire, conn)
        else:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if self._conns.get(conn.fd) is not conn:
            return
        del self._conns[conn.fd]
        self.loop.remove_reader(conn.fd)
        self.loop.remove_writer(conn.fd)
        if conn.timer is not None:
            conn.timer.cancel()
        conn.sock.close()

    # ------------------------------------------------------------------ request
    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:                         # the client hung up
            self._close(conn)
            return
        if conn.state == "draining":
            return
        conn.buf += data
        end = _head_end(conn.buf)
        if end < 0:
            if len(conn.buf) > self.max_request:
                self._respond(conn, _error(431))
            return
        if end > self.max_request:
            self._respond(conn, _error(431))
            return
        self._request(conn, bytes(conn.buf[:end]))

    def _request(self, conn: _Conn, head: bytes) -> None:
        line = head.split(b"\n", 1)[0].rstrip(b"\r")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            self._respond(conn, _error(400))
            return
        method, target, version = parts
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            self._respond(conn, _error(505))
            return
        conn.version = version.decode()
        path = target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            self._respond(conn, _error(404, conn.version))
            return
        if method not in (b"GET", b"HEAD"):
            self._respond(conn, _error(405, conn.version, "Allow: GET, HEAD\r\n"))
            return
        conn.head_only = method == b"HEAD"
        if path == b"/":
            self._respond(conn, response(200, [INDEX_PAGE], "text/html; charset=utf-8",
                                         conn.head_only, conn.version))
            return
        conn.state = "rendering"
        self.loop.remove_reader(conn.fd)
        self._waiting.append(conn)
        if self._render is None:
            self._render = self._page()
            self.loop.call_soon(self._render_step)

    # ------------------------------------------------------------------ render
    def _render_step(self) -> None:
        render = self._render
        if render is None:                   # closed meanwhile
            return
        try:
            done = render.step()
            body = render.chunks() if done else []
        except Exception:                    # answer 500, keep the daemon
            log.exception("metrics endpoint: rendering failed")
            done, body = True, None
        if not done:
            self.loop.call_soon(self._render_step)
            return
        self._render = None
        waiting, self._waiting = self._waiting, []
        for conn in waiting:
            if self._conns.get(conn.fd) is conn:
                page = (_error(500, conn.version) if body is None else
                        response(200, body, CONTENT_TYPE, conn.head_only, conn.version))
                self._respond(conn, page)

    # ------------------------------------------------------------------ response
    def _respond(self, conn: _Conn, data: list[bytes]) -> None:
        self.loop.remove_reader(conn.fd)
        conn.state = "writing"
        conn.out = [b for b in reversed(data) if b]       # a stack: the next piece is last
        conn.sent = 0
        conn.deadline = self.loop.time() + self.timeout
        self.loop.add_writer(conn.fd, self._write, conn)      # writable at once: next iteration

    def _write(self, conn: _Conn) -> None:
        out, budget = conn.out, WRITE_BATCH
        while out and budget > 0:
            piece = out[-1]
            try:
                n = conn.sock.send(memoryview(piece)[conn.sent:conn.sent + budget], socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(conn)
                return
            budget -= n
            conn.sent += n
            if conn.sent < len(piece):
                continue                        # a full socket buffer raises next time
            out.pop()
            conn.sent = 0
        if budget < WRITE_BATCH:
            conn.deadline = self.loop.time() + self.timeout
        if out:
            return
        self.loop.remove_writer(conn.fd)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = "draining"
        conn.deadline = self.loop.time() + min(LINGER, self.timeout)
        self.loop.add_reader(conn.fd, self._read, conn)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop listening and drop every connection and a render in progress."""
        self._render = None
        self._waiting = []
        for conn in list(self._conns.values()):
            self._close(conn)
        if self._resume is not None:
            self._resume.cancel()
        self.loop.remove_reader(self._sock.fileno())
        self._sock.close()


def _head_end(buf: bytearray) -> int:
    """Length of the request head (through the blank line), or -1 while incomplete."""
    i = buf.find(b"\r\n\r\n")
    j = buf.find(b"\n\n")
    ends = [k + 4 for k in (i,) if k >= 0] + [k + 2 for k in (j,) if k >= 0]
    return min(ends) if ends else -1


def _refuse(sock: socket.socket) -> None:
    """Best effort 503 to a connection over the cap, then close."""
    try:
        sock.send(b"".join(_error(503)), socket.MSG_NOSIGNAL)
    except OSError:
        pass
    sock.close()
