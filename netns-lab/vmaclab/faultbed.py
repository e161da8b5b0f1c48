"""The test bed of ``vmac-lab bench faults``: one implementation on two routers, a client probing the
VIP, a capture at the routers' bridge ports, and the figures of a time window.

Topology: LAN ``lan`` with r1 (priority 200, the master), r2 (150), client c1 and attacker x1
(only the ``flood`` case sends from it). A case injects its faults while everything runs, notes the
times (``time.monotonic()``, the clock of the prober and of the capture), calls ``finish()`` and
then asks for the figures of each window: probes lost and the longest outage (``probes``), state
changes per router (``transitions``), advertisements on the wire (``adverts``, ``crossing``) and
gratuitous ARPs (``garps``).
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import Self

from . import scenario
from .impls.base import Router
from .lab import Lab
from .observe import Observer, adverts, frames
from .prober import EchoServer, Prober, analyze
from .record import rfc_bounds
from .topology import Topology
from .util import log, wait_until

PRIORITIES = (200, 150)
PROBE_MS = 5.0


def topology() -> Topology:
    """r1, r2, c1 and x1 on one LAN (192.0.2.0/24, VIP .254)."""
    topo = Topology("faults")
    topo.add_lan("lan", "192.0.2.0/24", "2001:db8:0:1::/64")
    topo.add_router("r1", ["lan"])
    topo.add_router("r2", ["lan"])
    topo.add_client("c1", ["lan"])
    topo.add_attacker("x1", ["lan"])
    return topo


class Bed:
    """``with Bed("vmacd", 100) as bed:`` -- routers elected, probing and capturing."""

    def __init__(self, impl: str, advert_ms: int, rx_only: bool = False) -> None:
        self.impl, self.advert_ms, self.rx_only = impl, advert_ms, rx_only
        self.mdi_ms = rfc_bounds(advert_ms, PRIORITIES[1])[0]
        self.lab = Lab(topology())
        self.rs: list[Router] = []
        self.results: list = []
        self.events: list[dict] = []
        self.marks: list[tuple[float, str, str]] = []   # (t, node, state) the daemon cannot report
        self._prober = self._obs = None
        self._echoes: list[EchoServer] = []
        self._poll_stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.finished = False

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.lab.up()
        try:
            self._start()
        except BaseException:
            self._poll_stop.set()
            self.lab.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.finish()
        finally:
            self.lab.down()

    def _start(self) -> None:
        lab = self.lab
        sc = scenario.Scenario(impl=self.impl, advert_ms=self.advert_ms, top_priority=PRIORITIES[0],
                               priority_step=PRIORITIES[0] - PRIORITIES[1], timeout_s=15.0)
        self.rs = scenario._start_routers(lab, sc)
        if self.impl == "frr":                         # vrrpd reports nothing: poll its state
            self._poller = threading.Thread(target=self._poll, daemon=True, name="faultbed-poll")
            self._poller.start()
        self._echoes = [EchoServer.start(lab.ns(r.node), r.node) for r in self.rs]
        self.port_node = {lab.bridge_port(r.node, "lan"): r.node for r in self.rs}
        self._obs = Observer.start(lab.bridge_ns("lan"), list(self.port_node),
                                   str(lab.workdir("c1") / "observe.jsonl"),
                                   fdb_bridge=lab.bridge("lan"), kinds=["vrrp", "arp", "na"],
                                   rx_only=self.rx_only)
        self._prober = Prober.start(lab.ns("c1"), lab.vip("lan"), interval_ms=PROBE_MS,
                                    out_path=str(lab.workdir("c1") / "probes.jsonl"))
        time.sleep(max(0.3, 3 * self.advert_ms / 1000))   # a baseline of adverts and replies

    def _poll(self) -> None:
        while not self._poll_stop.wait(0.05):
            for r in self.rs:
                r.state()          # Frr.state() records each change in r.history

    def finish(self) -> None:
        """Stop probing and capturing (idempotent); the window figures are available afterwards."""
        if self.finished:
            return
        self.finished = True
        self._poll_stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        if self._prober is not None:
            self._prober.stop()
            self.results = self._prober.results
        if self._obs is not None:
            try:
                self.events = self._obs.stop()
            except RuntimeError as exc:       # keep the probes even when the capture died
                log.warning("observer: %s", exc)
        for echo in self._echoes:
            echo.stop()

    # -- helpers for the cases -------------------------------------------------------------------
    @property
    def master(self) -> Router:
        return self.rs[0]

    @property
    def backup(self) -> Router:
        return self.rs[1]

    def states(self) -> list[str]:
        """Current state of r1, r2."""
        return [r.state() for r in self.rs]

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until r1 is master and r2 backup; False (logged) when that did not happen."""
        timeout = timeout_s if timeout_s is not None else max(5.0, 10 * self.mdi_ms / 1000)
        try:
            wait_until(lambda: self.states() == ["master", "backup"], timeout, interval=0.01,
                       what=f"{self.impl}: r1 master, r2 backup")
            return True
        except TimeoutError as exc:
            log.warning("%s (states %s)", exc, self.states())
            return False

    def wait_state(self, r: Router, state: str, timeout_s: float) -> float | None:
        """Wait for *r* to report *state*; the time it was seen, or None after *timeout_s*."""
        try:
            wait_until(lambda: r.state() == state, timeout_s, interval=0.005,
                       what=f"{r.node} {state}")
            return time.monotonic()
        except TimeoutError:
            return None

    def mark(self, node: str, state: str) -> None:
        """Record a state the daemon could not report itself (it was SIGKILLed)."""
        self.marks.append((time.monotonic(), node, state))

    def hold(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    # -- figures of a window (after finish()) ----------------------------------------------------
    def probes(self, t0: float, t1: float | None = None) -> dict:
        """Probes sent in [t0, t1]: ``sent``, ``lost``, ``outage_ms`` (longest), ``switches``."""
        lo, hi = int(t0 * 1e9), None if t1 is None else int(t1 * 1e9)
        sel = [r for r in self.results if r.sent_ns >= lo and (hi is None or r.sent_ns <= hi)]
        if not sel:
            return {"sent": 0, "lost": None, "outage_ms": None, "switches": None}
        s = analyze(sel, PROBE_MS)
        return {"sent": s.sent, "lost": s.lost, "outage_ms": s.outage_ms,
                "switches": len(s.switches)}

    def history(self, node: str) -> list[tuple[float, str]]:
        """State reports of *node* (and marks), in time order."""
        r = next(r for r in self.rs if r.node == node)
        return sorted(list(r.history) + [(t, s) for t, n, s in self.marks if n == node])

    def transitions(self, t0: float, t1: float | None = None, into: str | None = None
                    ) -> dict[str, int]:
        """Per router: state changes reported in [t0, t1] (only changes *into* a state if given)."""
        out = {}
        for r in self.rs:
            prev, n = None, 0
            for t, state in self.history(r.node):
                if t > (t1 if t1 is not None else float("inf")):
                    break
                if t >= t0 and prev is not None and state != prev and into in (None, state):
                    n += 1
                prev = state
            out[r.node] = n
        return out

    def reported(self, node: str, state: str, t0: float) -> float | None:
        """First time at or after *t0* that *node* reported *state*."""
        return next((t for t, s in self.history(node) if t >= t0 and s == state), None)

    def adverts(self, node: str, t0: float, t1: float | None = None) -> list[int]:
        """Send times (ns) of *node*'s advertisements (priority > 0) for our VRID in [t0, t1]."""
        port = self.lab.bridge_port(node, "lan")
        vrid = self.master.cfg.vrid
        hi = int(t1 * 1e9) if t1 is not None else None
        return [e["t_ns"] for e in adverts(self.events, vrid=vrid, direction="rx")
                if e["ifname"] == port and e["priority"] > 0 and e["t_ns"] >= t0 * 1e9
                and (hi is None or e["t_ns"] <= hi)]

    def bursts(self, node: str, t0: float, t1: float) -> int:
        """Runs of *node*'s advertisements in [t0, t1], a new run after a silence of more than two
        intervals: for a backup, each run is one takeover seen on the wire (it cannot time out
        again in less than Master_Down_Interval, which is more than 3 intervals)."""
        gap = 2 * self.advert_ms * 1e6
        ts = self.adverts(node, t0, t1)
        return sum(1 for i, t in enumerate(ts) if i == 0 or t - ts[i - 1] > gap)

    def last_advert(self, t0: float, t1: float) -> dict | None:
        """The last advertisement for our VRID either router sent in [t0, t1], with ``node``."""
        vrid = self.master.cfg.vrid
        got = [e for e in adverts(self.events, vrid=vrid, direction="rx")
               if e["ifname"] in self.port_node and t0 * 1e9 <= e["t_ns"] <= t1 * 1e9]
        return {**got[-1], "node": self.port_node[got[-1]["ifname"]]} if got else None

    def crossing(self, t0: float) -> int | None:
        """First advertisement (ns) one router sent that the bridge forwarded to the other, at or
        after *t0* (its ``tx`` frame on the other router's port)."""
        vrid = self.master.cfg.vrid
        addr = {r.node: self.lab.addr(r.node, "lan") for r in self.rs}
        for e in adverts(self.events, vrid=vrid, direction="tx"):
            node = self.port_node.get(e["ifname"])
            if node and e["t_ns"] >= t0 * 1e9 and e["src_ip"] != addr[node]:
                return e["t_ns"]
        return None

    def garps(self, node: str, t0: float, t1: float) -> int:
        """Gratuitous ARPs / unsolicited NAs *node* sent for the VIP in [t0, t1]. A frame the
        bridge had just handed to *node* (``tx`` on its port, same sender, < 1 ms before) and that
        comes straight back is a reflection, not a GARP of its own: two boxes holding the vMAC at
        once bounce each other's broadcasts, and those are not counted."""
        port, vip = self.lab.bridge_port(node, "lan"), self.lab.vip("lan")
        n, handed = 0, -1
        for e in frames(self.events, None, None):
            garp = (e["kind"] == "arp" and e["gratuitous"] and e["src_ip"] == vip) \
                or (e["kind"] == "na" and not e["solicited"])
            if not garp or e["ifname"] != port:
                continue
            if e["dir"] == "tx":
                handed = e["t_ns"]
            elif t0 * 1e9 <= e["t_ns"] <= t1 * 1e9 and e["t_ns"] - handed > 1_000_000:
                n += 1
        return n

    def max_advert_gap_ms(self, node: str, t0: float, t1: float) -> float | None:
        """Longest gap between *node*'s advertisements sent in [t0, t1] (edges included)."""
        ts = [int(t0 * 1e9)] + self.adverts(node, t0, t1) + [int(t1 * 1e9)]
        return round(max(b - a for a, b in itertools.pairwise(ts)) / 1e6, 1)
