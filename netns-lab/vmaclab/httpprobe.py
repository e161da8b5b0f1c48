"""HTTP client prober: ``GET /`` on the VIP on a fixed schedule, each request with its own outcome.

Run in the client namespace (normally through :class:`HttpProber`)::

    ip netns exec NS python -m vmaclab.httpprobe --host 192.0.2.254 --interval-ms 25 \
        --timeout-ms 300 --out http.jsonl

Request *n* starts at ``t0 + n * interval`` whether or not earlier ones have finished (a request
that hangs until its timeout does not hide the ones behind it), on a new TCP connection
(HTTP/1.0, the server closes). Each request ends as exactly one of:

* ok -- status 200; ``node`` from the page (``this is node X``) or the ``Server`` header
  (``lighttpd node X``: the page may come from shared storage);
* ``timeout`` (no full answer within ``--timeout-ms``), ``refused``, ``reset``, ``unreachable``,
  ``closed`` (EOF before a status line), ``http NNN`` (any other status), or the errno name.

Prints ``ready`` once running; on SIGTERM it lets the requests in flight finish (or time out) and
writes JSON lines: a ``meta`` line and one ``request`` line per request. Times are
CLOCK_MONOTONIC nanoseconds, shared with the other lab tools.
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import re
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

from .prober import NsProcess

_NODE_PAGE = re.compile(rb"this is node (\w+)")
_NODE_TAG = re.compile(rb"^Server: lighttpd node (\w+)\r?$", re.MULTILINE | re.IGNORECASE)
_ERRORS = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset", errno.EPIPE: "reset",
           errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable",
           errno.ETIMEDOUT: "timeout"}


@dataclass
class Request:
    """One request: when it started and ended, how it ended, which node answered."""
    seq: int
    t_ns: int
    done_ns: int
    ok: bool
    error: str | None = None
    status: int | None = None
    node: str | None = None


def parse_response(data: bytes) -> tuple[int | None, str | None, str | None]:
    """(status, node, error) of a whole HTTP/1.x response; error None means a 200."""
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        return None, None, "closed"
    status = int(m.group(1))
    found = _NODE_PAGE.search(body) or _NODE_TAG.search(head)
    node = found.group(1).decode() if found else None
    return status, node, None if status == 200 else f"http {status}"


class _Flight:
    """One request on the wire (non-blocking socket)."""

    def __init__(self, seq: int, host: str, port: int) -> None:
        self.seq, self.t_ns = seq, time.monotonic_ns()
        self.buf = b""
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.err = self.sock.connect_ex((host, port))

    def end(self, ok: bool, error: str | None = None, status: int | None = None,
            node: str | None = None) -> Request:
        self.sock.close()
        return Request(self.seq, self.t_ns, time.monotonic_ns(), ok, error, status, node)


def _errname(code: int) -> str:
    return _ERRORS.get(code, errno.errorcode.get(code, str(code)))


class _Run:
    def __init__(self, host: str, port: int, interval_ns: int, timeout_ns: int) -> None:
        self.host, self.port = host, port
        self.interval_ns, self.timeout_ns = interval_ns, timeout_ns
        self.sel = selectors.DefaultSelector()
        self.flights: dict[int, _Flight] = {}
        self.done: list[Request] = []
        self.request = f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: vmaclab\r\n\r\n".encode()

    def launch(self, seq: int) -> None:
        f = _Flight(seq, self.host, self.port)
        if f.err not in (0, errno.EINPROGRESS):
            self.done.append(f.end(False, _errname(f.err)))
            return
        self.flights[seq] = f
        self.sel.register(f.sock, selectors.EVENT_WRITE, f)

    def _finish(self, f: _Flight, **how: object) -> None:
        self.sel.unregister(f.sock)
        del self.flights[f.seq]
        self.done.append(f.end(**how))

    def on_event(self, f: _Flight, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._finish(f, ok=False, error=_errname(err))
                return
            try:
                f.sock.send(self.request)
            except OSError as exc:
                self._finish(f, ok=False, error=_errname(exc.errno or 0))
                return
            self.sel.modify(f.sock, selectors.EVENT_READ, f)
            return
        try:
            data = f.sock.recv(65536)
        except OSError as exc:
            self._finish(f, ok=False, error=_errname(exc.errno or 0))
            return
        if data:
            f.buf += data
            return
        status, node, error = parse_response(f.buf)
        self._finish(f, ok=error is None, error=error, status=status, node=node)

    def expire(self, now: int) -> None:
        for f in [f for f in self.flights.values() if now - f.t_ns >= self.timeout_ns]:
            self._finish(f, ok=False, error="timeout")

    def wait(self, until_ns: int | None) -> None:
        """Serve the sockets until *until_ns*, or (None) until nothing is in flight."""
        while True:
            now = time.monotonic_ns()
            self.expire(now)
            if until_ns is None and not self.flights:
                return
            ends = [f.t_ns + self.timeout_ns for f in self.flights.values()]
            if until_ns is not None:
                ends.append(until_ns)
            for key, mask in self.sel.select(max(0.0, (min(ends) - now) / 1e9)):
                self.on_event(key.data, mask)
            if until_ns is not None and time.monotonic_ns() >= until_ns:
                return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vmaclab.httpprobe")
    ap.add_argument("--host", required=True, help="the VIP")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--interval-ms", type=float, default=25.0)
    ap.add_argument("--timeout-ms", type=float, default=300.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    stop = {"flag": False}
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.__setitem__("flag", True))
    run = _Run(args.host, args.port, int(args.interval_ms * 1e6), int(args.timeout_ms * 1e6))
    meta = {"host": args.host, "port": args.port, "interval_ms": args.interval_ms,
            "timeout_ms": args.timeout_ms, "pid": os.getpid(), "mono_ns": time.monotonic_ns()}
    print("ready", flush=True)
    due, seq = time.monotonic_ns(), 0
    while not stop["flag"]:
        run.launch(seq)
        seq += 1
        due += run.interval_ns
        now = time.monotonic_ns()
        if due < now - run.interval_ns:     # the host stalled: go on from now, do not burst
            due = now
        run.wait(due)
    run.wait(None)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "meta", **meta}) + "\n")
        fh.writelines(json.dumps({"type": "request", **asdict(r)}) + "\n"
                      for r in sorted(run.done, key=lambda r: r.seq))
    os.replace(tmp, args.out)
    return 0


def load(path: str) -> tuple[dict, list[Request]]:
    """Read a prober file: (meta, requests in start order)."""
    meta, reqs = {}, []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            kind = d.pop("type")
            if kind == "meta":
                meta = d
            elif kind == "request":
                reqs.append(Request(**d))
    return meta, sorted(reqs, key=lambda r: r.seq)


def _ms(t_ns: int | None, t0: int) -> float | None:
    return None if t_ns is None else round((t_ns - t0) / 1e6, 1)


def _failure_runs(reqs: list[Request]) -> list[list[Request]]:
    """Runs of consecutive failed requests (by sequence number)."""
    runs: list[list[Request]] = []
    for r in reqs:
        if r.ok:
            continue
        if runs and runs[-1][-1].seq == r.seq - 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    return runs


def window(reqs: list[Request], t_from: int, t_to: int) -> dict:
    """What the client saw of the page between *t_from* and *t_to* (requests started then).

    ``outages``: per run of consecutive failed requests, from the start of its first request to the
    end of the first good request after it (``ms`` None: nothing good came back in the window);
    ``outage_ms`` the longest. ``served_before``: node of the last good answer before *t_from*;
    ``served_after``: of the last good answer in the window; ``moves``: each change of node among
    good answers, at its end time. Times in ms relative to *t_from*.
    """
    inside = [r for r in reqs if t_from <= r.t_ns < t_to]
    good = sorted((r for r in inside if r.ok), key=lambda r: r.done_ns)
    before = [r for r in reqs if r.ok and r.done_ns <= t_from]
    outages = []
    for run in _failure_runs(inside):
        after = [r.done_ns for r in good if r.seq > run[-1].seq]
        end = min(after) if after else None
        errors: dict[str, int] = {}
        for r in run:
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
        outages.append({"start_ms": _ms(run[0].t_ns, t_from), "end_ms": _ms(end, t_from),
                        "ms": None if end is None else round((end - run[0].t_ns) / 1e6, 1),
                        "failed": len(run), "errors": errors})
    prev = max(before, key=lambda r: r.done_ns).node if before else None
    served_before, moves = prev, []
    for r in good:
        if r.node != prev:
            moves.append({"t_ms": _ms(r.done_ns, t_from), "from": prev, "to": r.node})
            prev = r.node
    closed = [o["ms"] for o in outages if o["ms"] is not None]
    return {"requests": len(inside), "failed": sum(o["failed"] for o in outages),
            "outages": outages, "outage_ms": max(closed, default=0.0),
            "open_outage": any(o["ms"] is None for o in outages),
            "served_before": served_before, "served_after": good[-1].node if good else None,
            "moves": moves}


_CLONE_NEWNET = 0x40000000


def ns_connect(ns: str, host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection made from network namespace *ns* (a helper thread enters it, connects and
    ends; the socket stays in *ns* and serves the caller)."""
    box: dict[str, object] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            box["sock"] = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            box["error"] = exc
        finally:
            os.close(fd)

    t = threading.Thread(target=work, name=f"ns-connect-{ns}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["sock"]  # type: ignore[return-value]


def fetch(ns: str, host: str, path: str = "/",
          timeout_s: float = 1.0) -> tuple[int | None, str | None, bytes]:
    """One ``GET path`` from namespace *ns*: (status, node, body); raises OSError when it fails."""
    with ns_connect(ns, host, 80, timeout_s) as s:
        s.settimeout(timeout_s)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, node, _error = parse_response(data)
    return status, node, data.partition(b"\r\n\r\n")[2]


def serving(ns: str, host: str, timeout_s: float = 0.5) -> str | None:
    """The node whose page answers at *host* now (None: no good answer)."""
    try:
        status, node, _body = fetch(ns, host, "/", timeout_s)
    except OSError:
        return None
    return node if status == 200 else None


class HttpProber:
    """A running HTTP prober in a namespace; :meth:`stop` returns its requests."""

    def __init__(self, proc: NsProcess, out_path: str) -> None:
        self.proc, self.out_path = proc, out_path

    @classmethod
    def start(cls, ns: str | None, host: str, out_path: str, interval_ms: float = 25.0,
              timeout_ms: float = 300.0) -> HttpProber:
        args = ["--host", host, "--interval-ms", str(interval_ms), "--timeout-ms", str(timeout_ms),
                "--out", out_path]
        return cls(NsProcess.start(ns, "vmaclab.httpprobe", args), out_path)

    def stop(self) -> list[Request]:
        code, _out, err = self.proc.stop(timeout_s=10.0)
        if code != 0:
            raise RuntimeError(f"http prober exited {code}: {err.strip()}")
        return load(self.out_path)[1]


if __name__ == "__main__":
    sys.exit(main())
