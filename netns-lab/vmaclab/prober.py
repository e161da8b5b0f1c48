"""Client prober: sequence-numbered probes to the VIP on a precise schedule, and their analysis.

Run in the client namespace (normally through :class:`Prober`)::

    ip netns exec NS python -m vmaclab.prober --target 192.0.2.254 --port 7007 \
        --interval-ms 5 --out probes.jsonl [--duration-s 10] [--stop-file F] [--mode udp|icmp]

It prints ``ready`` on stdout when its socket is open and GC is frozen, then sends probe *n* at
``t0 + n * interval`` (absolute CLOCK_MONOTONIC deadlines, not cumulative sleeps) until the duration
ends, SIGTERM/SIGINT arrives or the stop file appears; it then waits ``--drain-ms`` for late replies
and writes JSON lines: a ``meta`` line, one ``probe`` line per sequence number and a ``stats`` line.

All times are CLOCK_MONOTONIC nanoseconds (``*_ns``), which every network namespace on the host shares,
so they line up with the observers' and the scenario runner's ``time.monotonic_ns()``.  Durations in
the summary are milliseconds (``*_ms``) or microseconds (``*_us``) as named.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

MAGIC = b"VMP1"
_HDR = struct.Struct("!4sQI")  # magic, seq, run nonce
_PR_SET_TIMERSLACK = 29


# --------------------------------------------------------------------------- process helper

class NsProcess:
    """A lab helper process, optionally inside a namespace, that prints ``ready`` when it is up."""

    def __init__(self, proc: subprocess.Popen, argv: list[str]) -> None:
        self.proc = proc
        self.argv = argv

    @classmethod
    def start(cls, ns: str | None, module: str, args: list[str], ready_timeout_s: float = 10.0
              ) -> NsProcess:
        """Spawn ``python -m module args`` (in namespace ``ns`` unless None) and wait for ``ready``."""
        argv = [sys.executable, "-m", module, *args]
        if ns:
            argv = ["ip", "netns", "exec", ns, *argv]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self = cls(proc, argv)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stdout.readline()
            if line.strip() == "ready":
                return self
            if line == "":  # EOF: the child died
                break
        err = self.kill()
        raise RuntimeError(f"{' '.join(argv)}: not ready within {ready_timeout_s}s: {err.strip()}")

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> tuple[int, str, str]:
        """SIGTERM, wait up to ``timeout_s`` (then SIGKILL); returns (exit code, stdout rest, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out or "", err or ""

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the process to exit on its own; True if it did."""
        try:
            self.proc.wait(timeout=max(0.0, timeout_s))
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> str:
        """SIGKILL at once; returns what the process wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _out, err = self.proc.communicate()
        return err or ""


# --------------------------------------------------------------------------- results

@dataclass
class ProbeResult:
    """One probe: when it was due/sent, when (and from whom) its first reply came back."""
    seq: int
    sent_ns: int
    late_ns: int                 # send time minus scheduled deadline (ns), the prober's own jitter
    recv_ns: int | None = None   # first reply, None when lost
    responder: str | None = None
    dups: int = 0                # extra replies (two routers answering)


@dataclass
class ProbeSummary:
    """What the client saw; see :func:`analyze` for the definitions."""
    interval_ms: float
    sent: int
    received: int
    lost: int
    late: int
    duplicates: int
    outage_ms: float
    outage_start_ns: int | None
    outage_end_ns: int | None
    outage_open: bool
    max_gap_ms: float
    start_ns: int | None
    end_ns: int | None
    first_responder: str | None
    last_responder: str | None
    loss_intervals: list[list[int]] = field(default_factory=list)   # [first sent_ns, last sent_ns, n]
    responders: list[dict] = field(default_factory=list)            # segments in receive order
    switches: list[dict] = field(default_factory=list)              # {t_ns, from, to}
    jitter_us: dict = field(default_factory=dict)                   # send lateness p50/p99/max
    rtt_ms: dict = field(default_factory=dict)                      # p50/p99/max

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProbeSummary:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100.0 * len(s) + 0.5) - 1))
    return s[k]


def _failed_runs(results: list[ProbeResult], late_ns: int) -> list[tuple[int, int]]:
    """Index ranges [a, b] of consecutive probes that were lost or answered later than ``late_ns``."""
    runs, start = [], None
    for i, r in enumerate(results):
        bad = r.recv_ns is None or r.recv_ns - r.sent_ns > late_ns
        if bad and start is None:
            start = i
        elif not bad and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(results) - 1))
    return runs


def _responder_segments(replies: list[ProbeResult]) -> tuple[list[dict], list[dict]]:
    """Group replies (in receive order) into runs of one responder; return (segments, switches)."""
    segs: list[dict] = []
    for r in replies:
        if segs and segs[-1]["responder"] == r.responder:
            segs[-1]["last_ns"] = r.recv_ns
            segs[-1]["count"] += 1
        else:
            segs.append({"responder": r.responder, "first_ns": r.recv_ns, "last_ns": r.recv_ns, "count": 1})
    switches = [{"t_ns": b["first_ns"], "from": a["responder"], "to": b["responder"]}
                for a, b in itertools.pairwise(segs)]
    return segs, switches


def _outage(results: list[ProbeResult], replies: list[ProbeResult], late_ns: int, end_ns: int
            ) -> tuple[float, int | None, int | None, bool, list[list[int]]]:
    """Longest outage: last reply before a failed run to the first reply received after it began."""
    best = (0.0, None, None, False)
    intervals = []
    for a, b in _failed_runs(results, late_ns):
        intervals.append([results[a].sent_ns, results[b].sent_ns, b - a + 1])
        prev = results[a - 1].recv_ns if a > 0 else None
        start = prev if prev is not None else results[a].sent_ns
        after = [r.recv_ns for r in replies if r.recv_ns > start and r.seq >= results[a].seq]
        end, is_open = (min(after), False) if after else (end_ns, True)
        ms = (end - start) / 1e6
        if ms > best[0]:
            best = (ms, start, end, is_open)
    return best[0], best[1], best[2], best[3], intervals


def analyze(results: list[ProbeResult], interval_ms: float | None = None, late_ms: float = 100.0,
            end_ns: int | None = None) -> ProbeSummary:
    """Summarise a probe run.

    * ``lost``: probes never answered; ``late``: answered more than ``late_ms`` after sending.
    * ``outage_ms``: for each run of consecutive lost-or-late probes, the time from the last reply
      before the run to the first reply received after it started (a late, queued reply counts:
      service was back); the longest such span.  0 when nothing was lost or late.  If nothing came
      back before the end (``end_ns``, default last send), the outage is ``outage_open``.
    * ``max_gap_ms``: longest time between two consecutive replies (receive order).
    * ``responders`` / ``switches``: who answered, in receive order, and when that changed.
    * ``jitter_us``: the prober's own send lateness behind its schedule (p50/p99/max, µs).
    """
    results = sorted(results, key=lambda r: r.seq)
    if interval_ms is None:
        gaps = [b.sent_ns - a.sent_ns - b.late_ns + a.late_ns
                for a, b in itertools.pairwise(results)]
        interval_ms = _pct(gaps, 50) / 1e6 if gaps else 0.0
    replies = sorted((r for r in results if r.recv_ns is not None), key=lambda r: r.recv_ns)
    last_ns = end_ns if end_ns is not None else (results[-1].sent_ns if results else 0)
    outage, o_start, o_end, o_open, intervals = _outage(results, replies, int(late_ms * 1e6), last_ns)
    segs, switches = _responder_segments(replies)
    gaps = [(b.recv_ns - a.recv_ns) / 1e6 for a, b in itertools.pairwise(replies)]
    lateness = [r.late_ns / 1e3 for r in results]
    rtts = [(r.recv_ns - r.sent_ns) / 1e6 for r in replies]
    return ProbeSummary(
        interval_ms=interval_ms, sent=len(results), received=len(replies),
        lost=sum(1 for r in results if r.recv_ns is None),
        late=sum(1 for r in replies if r.recv_ns - r.sent_ns > late_ms * 1e6),
        duplicates=sum(r.dups for r in results), outage_ms=round(outage, 3),
        outage_start_ns=o_start, outage_end_ns=o_end, outage_open=o_open,
        max_gap_ms=round(max(gaps, default=0.0), 3),
        start_ns=results[0].sent_ns if results else None, end_ns=last_ns if results else None,
        first_responder=replies[0].responder if replies else None,
        last_responder=replies[-1].responder if replies else None,
        loss_intervals=intervals, responders=segs, switches=switches,
        jitter_us={k: round(_pct(lateness, q), 1) for k, q in (("p50", 50), ("p99", 99), ("max", 100))},
        rtt_ms={k: round(_pct(rtts, q), 3) for k, q in (("p50", 50), ("p99", 99), ("max", 100))},
    )


def load_results(path: str) -> tuple[dict, list[ProbeResult]]:
    """Read a prober output file; returns (meta line, probes)."""
    meta: dict = {}
    probes = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            kind = d.pop("type")
            if kind == "probe":
                probes.append(ProbeResult(**d))
            elif kind == "meta":
                meta = d
    return meta, probes


# --------------------------------------------------------------------------- the probing process

def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class _Channel:
    """Socket plus encode/decode for one probe mode (udp: echo server names the router; icmp: echo)."""

    def __init__(self, mode: str, target: str, port: int) -> None:
        info = socket.getaddrinfo(target, port, type=socket.SOCK_DGRAM)[0]
        self.family, self.addr, self.mode = info[0], info[4], mode
        self.v6 = self.family == socket.AF_INET6
        self.ident = os.getpid() & 0xFFFF
        if mode == "udp":
            self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
            self.sock.connect(self.addr)  # only replies *from the target address* count
        else:
            proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
            self.sock = socket.socket(self.family, socket.SOCK_RAW, proto)
        self.sock.setblocking(False)

    def packet(self, seq: int, nonce: int) -> bytes:
        """The bytes sent for probe ``seq``."""
        body = _HDR.pack(MAGIC, seq, nonce)
        if self.mode == "udp":
            return body
        typ = 128 if self.v6 else 8
        hdr = struct.pack("!BBHHH", typ, 0, 0, self.ident, seq & 0xFFFF)
        csum = 0 if self.v6 else _checksum(hdr + body)  # the kernel fills ICMPv6 checksums
        return struct.pack("!BBHHH", typ, 0, csum, self.ident, seq & 0xFFFF) + body

    def parse(self, data: bytes, nonce: int) -> tuple[int, str | None] | None:
        """(seq, responder) of a reply that belongs to this run, else None."""
        if self.mode == "icmp":
            if not self.v6:
                data = data[(data[0] & 0x0F) * 4:]
            want = 129 if self.v6 else 0
            if (len(data) < 8 + _HDR.size or data[0] != want
                    or struct.unpack("!H", data[4:6])[0] != self.ident):
                return None
            data = data[8:]
        if len(data) < _HDR.size:
            return None
        magic, seq, got_nonce = _HDR.unpack_from(data)
        if magic != MAGIC or got_nonce != nonce:
            return None
        rest = data[_HDR.size:]
        return seq, (rest[1:].decode(errors="replace") if rest.startswith(b"|") else None)


def _set_realtime(priority: int) -> bool:
    """SCHED_FIFO at ``priority`` (1..99; 0: leave as is) so load on the box does not delay sends.

    The prober only sleeps in select() between sends, so it cannot starve anything."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (OSError, AttributeError):
        return False


def _set_timer_slack_ns(ns: int) -> None:
    """Ask the kernel for ``ns`` of timer slack (default 50 µs) so sleeps wake on time."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, ns, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class _Run:
    """State of one probing run (kept in flat lists; GC is off while it runs)."""

    def __init__(self, chan: _Channel, interval_ns: int, nonce: int) -> None:
        self.chan, self.interval_ns, self.nonce = chan, interval_ns, nonce
        self.sent: list[int] = []
        self.late: list[int] = []
        self.recv: dict[int, list] = {}
        self.send_errors = 0

    def send(self, seq: int, due_ns: int) -> None:
        """Send probe ``seq``, recording its send time and lateness."""
        pkt = self.chan.packet(seq, self.nonce)
        now = time.monotonic_ns()
        try:
            self.chan.sock.sendto(pkt, self.chan.addr)
        except OSError:
            self.send_errors += 1  # e.g. EHOSTUNREACH while ARP fails: the probe is simply lost
        self.sent.append(now)
        self.late.append(now - due_ns)

    def drain(self) -> None:
        """Read every pending reply, timestamping each as it is read."""
        while True:
            try:
                data = self.chan.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP errors queued on the UDP socket (port unreachable etc.)
            now = time.monotonic_ns()
            got = self.chan.parse(data, self.nonce)
            if got is None or got[0] >= len(self.sent):
                continue
            entry = self.recv.get(got[0])
            if entry is None:
                self.recv[got[0]] = [now, got[1], 0]
            else:
                entry[2] += 1

    def wait(self, until_ns: int) -> None:
        """Receive replies until monotonic time ``until_ns``."""
        sock = self.chan.sock
        while True:
            left = until_ns - time.monotonic_ns()
            if left <= 0:
                return
            try:
                readable, _, _ = select.select([sock], [], [], left / 1e9)
            except InterruptedError:
                continue
            if readable:
                self.drain()

    def results(self) -> list[ProbeResult]:
        """Per-probe results."""
        out = []
        for seq, (sent, late) in enumerate(zip(self.sent, self.late, strict=True)):
            rcv = self.recv.get(seq)
            out.append(ProbeResult(seq, sent, late, rcv[0] if rcv else None, rcv[1] if rcv else None,
                                   rcv[2] if rcv else 0))
        return out


def probe_loop(run: _Run, duration_ns: int | None, stop_file: str | None, stop: dict) -> None:
    """Send on the absolute schedule t0 + n*interval until duration, signal or stop file."""
    t0 = time.monotonic_ns() + 2_000_000
    seq, next_file_check = 0, t0
    while True:
        due = t0 + seq * run.interval_ns
        run.wait(due)
        if stop["flag"] or (duration_ns is not None and due - t0 >= duration_ns):
            return
        if stop_file and due >= next_file_check:
            next_file_check = due + 20_000_000
            if os.path.exists(stop_file):
                return
        run.send(seq, due)
        seq += 1


def _write(out_path: str, meta: dict, run: _Run, stats: dict) -> None:
    """Write meta, probe and stats JSON lines (atomically, via a temporary file)."""
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "meta", **meta}) + "\n")
        fh.writelines(json.dumps({"type": "probe", **asdict(r)}) + "\n" for r in run.results())
        fh.write(json.dumps({"type": "stats", **stats}) + "\n")
    os.replace(tmp, out_path)


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see module docstring)."""
    ap = argparse.ArgumentParser(prog="vmaclab.prober")
    ap.add_argument("--target", required=True, help="VIP (IPv4 or IPv6)")
    ap.add_argument("--port", type=int, default=7007)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--duration-s", type=float, default=None,
                    help="stop after this long (default: on signal)")
    ap.add_argument("--stop-file", default=None, help="stop when this file exists")
    ap.add_argument("--drain-ms", type=float, default=300.0,
                    help="wait for late replies after the last probe")
    ap.add_argument("--mode", choices=("udp", "icmp"), default="udp")
    ap.add_argument("--out", required=True, help="JSON lines output file")
    ap.add_argument("--rt-priority", type=int, default=10, help="SCHED_FIFO priority (0: normal scheduling)")
    args = ap.parse_args(argv)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("flag", True))
    _set_timer_slack_ns(1)
    realtime = _set_realtime(args.rt_priority)
    nonce = int.from_bytes(os.urandom(4), "big")
    run = _Run(_Channel(args.mode, args.target, args.port), int(args.interval_ms * 1e6), nonce)
    meta = {"target": args.target, "port": args.port, "mode": args.mode, "interval_ms": args.interval_ms,
            "pid": os.getpid(), "realtime": realtime, "mono_ns": time.monotonic_ns(),
            "wall_ns": time.time_ns()}
    gc.collect()
    gc.freeze()
    gc.disable()
    print("ready", flush=True)
    duration = int(args.duration_s * 1e9) if args.duration_s is not None else None
    probe_loop(run, duration, args.stop_file, stop)
    run.wait(time.monotonic_ns() + int(args.drain_ms * 1e6))
    gc.enable()
    summary = analyze(run.results(), args.interval_ms)
    stats = {"send_errors": run.send_errors, "jitter_us": summary.jitter_us, "sent": summary.sent,
             "lost": summary.lost, "outage_ms": summary.outage_ms}
    _write(args.out, meta, run, stats)
    print(json.dumps(stats), flush=True)
    return 0


# --------------------------------------------------------------------------- Python API

class Prober:
    """A running prober process; :meth:`stop` ends it and returns its :class:`ProbeSummary`."""

    def __init__(self, proc: NsProcess, out_path: str, interval_ms: float, ends_at: float | None = None
                 ) -> None:
        self.proc, self.out_path, self.interval_ms = proc, out_path, interval_ms
        self.ends_at = ends_at  # time.monotonic() by which a bounded run has finished on its own
        self.results: list[ProbeResult] = []
        self.meta: dict = {}

    @classmethod
    def start(cls, ns: str | None, target: str, port: int = 7007, interval_ms: float = 5.0,
              out_path: str = "probes.jsonl", mode: str = "udp", duration_s: float | None = None,
              stop_file: str | None = None, rt_priority: int = 10) -> Prober:
        """Start probing ``target`` from namespace ``ns`` every ``interval_ms`` ms; returns once ready."""
        args = ["--target", target, "--port", str(port), "--interval-ms", str(interval_ms),
                "--out", out_path, "--mode", mode, "--rt-priority", str(rt_priority)]
        if duration_s is not None:
            args += ["--duration-s", str(duration_s)]
        if stop_file:
            args += ["--stop-file", stop_file]
        proc = NsProcess.start(ns, "vmaclab.prober", args)
        ends_at = None if duration_s is None else time.monotonic() + duration_s + 0.35
        return cls(proc, out_path, interval_ms, ends_at)

    def stop(self, late_ms: float = 100.0, timeout_s: float = 10.0) -> ProbeSummary:
        """Stop (SIGTERM; it drains late replies, writes its file) and analyse the results.

        A run started with ``duration_s`` is first allowed to finish on its own."""
        if self.ends_at is not None:
            self.proc.wait(self.ends_at - time.monotonic() + 2.0)
        code, _out, err = self.proc.stop(timeout_s)
        if code != 0:
            raise RuntimeError(f"prober exited {code}: {err.strip()}")
        self.meta, self.results = load_results(self.out_path)
        return analyze(self.results, self.interval_ms, late_ms)


class EchoServer:
    """The UDP echo responder (:mod:`vmaclab.echo`) running in a router namespace."""

    def __init__(self, proc: NsProcess, ns: str | None, node_name: str, port: int) -> None:
        self.proc, self.ns, self.node_name, self.port = proc, ns, node_name, port

    @classmethod
    def start(cls, ns: str | None, node_name: str, port: int = 7007, rt_priority: int = 5) -> EchoServer:
        """Start answering on UDP ``port`` in ``ns`` with replies naming ``node_name``."""
        proc = NsProcess.start(ns, "vmaclab.echo", ["--node", node_name, "--port", str(port),
                                                    "--rt-priority", str(rt_priority)])
        return cls(proc, ns, node_name, port)

    def stop(self) -> None:
        """Stop the responder (SIGTERM, then SIGKILL after 5 s)."""
        self.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
