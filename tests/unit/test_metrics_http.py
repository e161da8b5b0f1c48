"""The metrics endpoint on a real vmacd.loop.Loop, with real client sockets: the page, errors,
bounds (request size, idle time, connection cap), slow and idle clients, and a loop that keeps
its timers while a large registry is scraped."""
from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmacd.control.httpd import MetricsServer
from vmacd.control.metrics import Metrics, MetricsError, parse_listen
from vmacd.loop import Loop

CURL = shutil.which("curl")


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


def big(n: int = 255) -> Metrics:
    m = Metrics(node="r1")
    for k in range(1, n + 1):
        i = m.instance(f"vr{k}", k, "eth1")
        i.transition("backup", "master", 1.7e9)
        i.interval(0.1)
        i.track("eth0", True)
        i.resources(["httpd"])
    return m


def pump(loop: Loop, cond, timeout: float = 5.0) -> None:
    """Run the loop (in this thread) until cond() is true."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        loop.run_once(0.005)


class Client:
    """A raw non-blocking TCP client, polled from the test thread."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", port))
        self.s.setblocking(False)
        self.data = bytearray()
        self.eof = False
        self.reset = False

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def poll(self, limit: int = 1 << 30) -> bool:
        """Read what is there (at most `limit` bytes); True once the server closed."""
        while not self.eof and limit > 0:
            try:
                chunk = self.s.recv(min(65536, limit))
            except BlockingIOError:
                break
            except ConnectionResetError:
                self.eof = self.reset = True
                break
            if not chunk:
                self.eof = True
                break
            self.data += chunk
            limit -= len(chunk)
        return self.eof

    def response(self) -> tuple[int, dict[str, str], bytes, str]:
        head, _, body = bytes(self.data).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        return int(status), headers, body, version

    def close(self) -> None:
        self.s.close()


def fetch(loop: Loop, port: int, request: bytes) -> tuple[int, dict[str, str], bytes, str]:
    c = Client(port)
    try:
        c.send(request)
        pump(loop, c.poll)
        assert not c.reset
        return c.response()
    finally:
        c.close()


@contextlib.contextmanager
def loop_thread(loop: Loop):
    """The loop in a thread, for blocking clients (urllib)."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            loop.run_once(0.02)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join(5)


def test_get_metrics_with_an_http_client_library(loop):
    m = big(3)
    assert m.serve(loop, "") is None
    host, port = m.serve(loop, "127.0.0.1:0")
    assert host == "127.0.0.1" and port > 0
    try:
        with loop_thread(loop):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                status, ctype, body = resp.status, resp.headers["Content-Type"], resp.read().decode()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                index = resp.read().decode()
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
            assert err.value.code == 404
    finally:
        m.close()
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    names = {fam.name for fam in text_string_to_metric_families(body)}
    assert {"vmacd_instance_state", "vmacd_stall_seconds", "process_resident_memory_bytes"} <= names
    assert 'vrrp_instance="vr3"' in body
    assert 'href="/metrics"' in index


@pytest.mark.parametrize("request_, status, check", [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, lambda h, b, v: b.startswith(b"# HELP")),
    (b"GET /metrics?x=1 HTTP/1.0\n\n", 200, lambda h, b, v: v == "HTTP/1.0"),
    (b"HEAD /metrics HTTP/1.1\r\n\r\n", 200, lambda h, b, v: b == b"" and int(h["content-length"]) > 10000),
    (b"GET / HTTP/1.1\r\n\r\n", 200,
     lambda h, b, v: b'href="/metrics"' in b and h["content-type"].startswith("text/html")),
    (b"GET /metric HTTP/1.1\r\n\r\n", 404, lambda h, b, v: b == b"404 Not Found\n"),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, lambda h, b, v: h["allow"] == "GET, HEAD"),
    (b"HELLO\r\n\r\n", 400, lambda h, b, v: True),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, lambda h, b, v: True),   # a TLS hello
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505, lambda h, b, v: True),
])
def test_requests_and_their_answers(loop, request_, status, check):
    m = big(20)
    _, port = m.serve(loop, "127.0.0.1:0")
    try:
        got, headers, body, version = fetch(loop, port, request_)
    finally:
        m.close()
    assert got == status, (got, body[:200])
    assert headers["connection"] == "close" and "date" in headers
    if not request_.startswith(b"HEAD"):
        assert int(headers["content-length"]) == len(body)
    assert check(headers, body, version)


def test_oversized_request_gets_431_and_the_next_client_is_served(loop):
    m = big(5)
    _, port = m.serve(loop, "127.0.0.1:0")
    try:
        c = Client(port)
        c.send(b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000)   # no end of head
        pump(loop, c.poll)
        assert c.response()[0] == 431
        assert fetch(loop, port, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == 200
    finally:
        m.close()


def test_bytes_after_the_request_do_not_cut_the_response(loop):
    """The server drains what the client still sends after the response: closing a socket with
    unread data would send a reset, and the client could lose the end of a large page."""
    m = big()
    _, port = m.serve(loop, "127.0.0.1:0")
    try:
        c = Client(port, rcvbuf=4096)             # most of the page is still in the server's buffer
        c.send(b"GET /metrics HTTP/1.1\r\n\r\n" + b"junk" * 8000)
        pump(loop, c.poll)
        status, headers, body, _ = c.response()
        assert not c.reset and status == 200
        assert len(body) == int(headers["content-length"]) > 1_000_000
        assert body.endswith(b"\n") and b"process_max_fds " in body
    finally:
        m.close()


def test_idle_clients_cannot_lock_out_a_scraper(loop):
    m = big(5)
    srv = MetricsServer(loop, "127.0.0.1:0", m.renderer, max_conns=8)
    port = srv.address[1]
    idle = [Client(port) for _ in range(40)]           # connect, send nothing
    try:
        pump(loop, lambda: sum(c.poll() for c in idle) >= 32, timeout=5)
        assert len(srv._conns) <= 8
        status, _, body, _ = fetch(loop, port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and b"vmacd_build_info" in body
    finally:
        for c in idle:
            c.close()
        srv.close()


def test_idle_and_trickling_clients_are_closed_after_the_timeout(loop):
    srv = MetricsServer(loop, "127.0.0.1:0", big(1).renderer, timeout=0.3)
    port = srv.address[1]
    idle, trickle = Client(port), Client(port)
    t0 = time.monotonic()
    try:
        request = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"x" * 200
        for k in range(len(request)):                  # a byte every 10 ms: never a whole head
            if trickle.poll():
                break
            trickle.send(request[k:k + 1])
            next_byte = t0 + (k + 1) * 0.01
            pump(loop, lambda t=next_byte: time.monotonic() >= t)
        pump(loop, lambda: idle.poll() and trickle.poll(), timeout=3)
        elapsed = time.monotonic() - t0
        assert 0.25 < elapsed < 1.5, elapsed
        assert idle.data == b"" and trickle.data == b"" and not srv._conns
    finally:
        idle.close()
        trickle.close()
        srv.close()


def test_a_slow_reader_gets_the_whole_page_while_others_are_served(loop):
    m = big()
    _, port = m.serve(loop, "127.0.0.1:0")
    slow = Client(port, rcvbuf=4096)
    try:
        slow.send(b"GET /metrics HTTP/1.1\r\n\r\n")
        pump(loop, lambda: (slow.poll(limit=1000), len(slow.data) > 0)[1])
        for _ in range(3):                             # others are served meanwhile
            assert fetch(loop, port, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == 200
        assert not slow.eof
        pump(loop, lambda: slow.poll(limit=20000), timeout=20)
        status, headers, body, _ = slow.response()
        assert status == 200 and len(body) == int(headers["content-length"]) > 1_000_000
    finally:
        slow.close()
        m.close()


def test_out_of_file_descriptors_pauses_accepting_instead_of_spinning(loop):
    """With no fd left and no connection to shed, the listening socket stays readable: a
    level-triggered loop would spin on accept(). The server stops watching it for a second."""
    m = big(1)
    srv = MetricsServer(loop, "127.0.0.1:0", m.renderer)
    port = srv.address[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hog: list[int] = []
    client = subprocess.Popen([sys.executable, "-c", CONNECT_AND_WAIT, str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "connected"   # in the backlog, not accepted
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        with contextlib.suppress(OSError):
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        t0 = time.thread_time()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            loop.run_once(0.05)
        spent = time.thread_time() - t0
        assert spent < 0.05, f"{spent:.3f} s of CPU in 0.5 s: spinning on accept()"
        for fd in hog:
            os.close(fd)
        hog.clear()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        client.stdin.write("go\n")
        client.stdin.flush()
        pump(loop, lambda: client.poll() is not None, timeout=5)    # served after the pause
        assert client.stdout.read().startswith("HTTP/1.0 200 OK")
    finally:
        for fd in hog:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if client.poll() is None:
            client.kill()
        client.wait()
        srv.close()


CONNECT_AND_WAIT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
sys.stdin.readline()
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode())
"""


class HugePage:
    """A page larger than any socket buffer (16 MiB), ready at once."""

    def step(self) -> bool:
        return True

    def chunks(self) -> list[bytes]:
        return [b"x" * (16 << 20)]


def test_a_reader_that_stops_reading_is_dropped_after_the_timeout(loop):
    srv = MetricsServer(loop, "127.0.0.1:0", HugePage, timeout=0.3)
    stuck = Client(srv.address[1], rcvbuf=4096)
    try:
        stuck.send(b"GET /metrics HTTP/1.1\r\n\r\n")
        pump(loop, lambda: bool(srv._conns) and all(c.state == "writing" for c in srv._conns.values()))
        t0 = time.monotonic()
        pump(loop, lambda: not srv._conns, timeout=3)
        assert 0.25 < time.monotonic() - t0 < 1.5
    finally:
        stuck.close()
        srv.close()


def test_concurrent_scrapes_share_one_render(loop):
    m = big()
    renders = []

    def page():
        renders.append(1)
        return m.renderer()

    srv = MetricsServer(loop, "127.0.0.1:0", page)
    clients = [Client(srv.address[1]) for _ in range(5)]
    try:
        for c in clients:
            c.send(b"GET /metrics HTTP/1.1\r\n\r\n")
        pump(loop, lambda: all([c.poll() for c in clients]))  # noqa: C419 - poll every one
        pages = [c.response() for c in clients]
        assert [p[0] for p in pages] == [200] * 5 and len({p[2] for p in pages}) == 1
        assert len(renders) == 1
    finally:
        for c in clients:
            c.close()
        srv.close()


def longest_iteration_per_scrape(loop: Loop, port: int, scrapes: int) -> list[float]:
    """Scrape with curl (another process) while this thread runs the loop; per scrape, the most
    CPU time one loop iteration took (CPU time: what the loop's own work costs, whatever else
    the machine is doing)."""
    worst = []
    for _ in range(scrapes):
        curl = subprocess.Popen([CURL, "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{port}/metrics"])
        longest = 0.0
        try:
            while curl.poll() is None:
                t0 = time.thread_time()
                loop.run_once(0.002)
                longest = max(longest, time.thread_time() - t0)
        finally:
            if curl.poll() is None:
                curl.kill()
        assert curl.wait() == 0
        worst.append(longest)
    return worst


def test_scraping_255_instances_never_holds_the_loop_for_long(loop):
    """The page is rendered a step per loop iteration and sent in bounded batches; the same page
    rendered in one go (the control, in the same run) shows what the loop's timers would
    otherwise wait."""
    assert CURL, "curl is needed (make deps installs it)"
    m = big()
    stepped = MetricsServer(loop, "127.0.0.1:0", m.renderer)
    at_once = MetricsServer(loop, "127.0.0.1:0", lambda: m.renderer(chunk=60.0))
    try:
        control = statistics.median(longest_iteration_per_scrape(loop, at_once.address[1], 7))
        ours = statistics.median(longest_iteration_per_scrape(loop, stepped.address[1], 7))
    finally:
        stepped.close()
        at_once.close()
    assert ours < 0.25 * control, f"stepped {ours * 1e3:.2f} ms, at once {control * 1e3:.2f} ms"


def test_busy_port_is_a_clear_error_and_close_frees_it(loop):
    m = big(1)
    _, port = m.serve(loop, "127.0.0.1:0")
    c = Client(port)
    pump(loop, lambda: bool(m._server._conns))
    with pytest.raises(MetricsError, match=f"metrics_listen 127.0.0.1:{port}: Address already in use"):
        Metrics().serve(loop, f"127.0.0.1:{port}")
    m.close()
    assert c.poll() or (time.sleep(0.05), c.poll())[1]          # its connection was closed
    c.close()
    m2 = Metrics()
    assert m2.serve(loop, f"127.0.0.1:{port}") == ("127.0.0.1", port)
    m2.close()


def test_unresolvable_host_is_a_clear_error(loop):
    with pytest.raises(MetricsError, match=re.escape("metrics_listen no-such-host.invalid:9650: ")):
        Metrics().serve(loop, "no-such-host.invalid:9650")


def test_ipv6_loopback(loop):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    m = big(1)
    host, port = m.serve(loop, "[::1]:0")
    assert host == "::1"
    try:
        with loop_thread(loop), urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200 and b"vmacd_instance_state" in resp.read()
    finally:
        m.close()


@pytest.mark.parametrize("listen, expected", [
    ("127.0.0.1:9650", ("127.0.0.1", 9650)),
    ("[::1]:9650", ("::1", 9650)),
    ("0.0.0.0:1", ("0.0.0.0", 1)),
    ("localhost:9650", ("localhost", 9650)),
])
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9650", ":9650", "127.0.0.1", "127.0.0.1:http", "::1:9650",
                                    "[nope]:9650", "127.0.0.1:70000"])
def test_parse_listen_refuses(listen):
    with pytest.raises(MetricsError, match="metrics_listen"):
        parse_listen(listen)
