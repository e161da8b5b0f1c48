"""The daemon's Prometheus metrics: a small model of plain numbers, rendered as text on scrape.

Every per-instance series carries `vrrp_instance` (the config's instance name), `vrid` and
`interface`. `instance` is deliberately not used: Prometheus sets it to the scrape target and
would rename ours to `exported_instance`. Which box a series comes from is the scrape target's
business (`instance` and the fleet's own target labels, docs/metrics.md); the node name is on
`vmacd_build_info{version,node}`.

The daemon gets one `InstanceMetrics` per VRRP instance. Its methods are plain attribute updates
(no lock, no label lookup, no dict built per call): the per-packet ones run thousands of times a
second at 255 instances. Text is produced only when scraped, a few instances per event-loop
iteration (`Render`), so a scrape of a large registry never holds the loop for long; the HTTP
endpoint is `vmacd.control.httpd`. See docs/metrics.md for every series.
"""
from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vmacd import __version__
from vmacd.control.exposition import (
    Family,
    HistogramShape,
    escape_label,
    labels,
    number,
)
from vmacd.control.httpd import MetricsError, MetricsServer, parse_listen
from vmacd.control.procstat import ProcessStats
from vmacd.core.wire import DROP_REASONS

if TYPE_CHECKING:
    from vmacd.loop import Loop

__all__ = [
    "OWN_FRAME_KINDS",
    "RESOURCE_OPS",
    "STATES",
    "UNKNOWN_INSTANCE",
    "InstanceMetrics",
    "Metrics",
    "MetricsError",
    "parse_listen",
]

STATES = ("init", "backup", "master", "fault", "stopped")
LABELS = ("vrrp_instance", "vrid", "interface")
# frames that claim to come from this router but were not sent by it: `replay` = an advertisement
# from its own primary address for its own VRID; `vmac` = a frame whose source MAC is its vMAC
OWN_FRAME_KINDS = ("reasserted", "reported")
RESOURCE_OPS = ("start", "stop", "monitor")
# vrrp_instance label of refused packets that match no configured instance
UNKNOWN_INSTANCE = ""
# observed master advertisement intervals: RFC 9568 allows 10 ms .. 40.95 s; buckets sit just
# above the common settings (100 ms, 1 s) so "late" shows as a bucket shift
INTERVAL = HistogramShape("vmacd_advert_interval_seconds",
                          (0.01, 0.02, 0.05, 0.1, 0.12, 0.2, 0.25, 0.5, 1.0, 1.2, 2.0, 3.0, 5.0,
                           10.0, 20.0, 41.0))
# event-loop lateness (how late a timer fired): 100 µs is an idle loop, 100 ms costs a fast
# advertisement, seconds cost a failover
STALL = HistogramShape("vmacd_stall_seconds",
                       (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
_REASONS = frozenset(DROP_REASONS)
_INTERVAL_BOUNDS, _STALL_BOUNDS = INTERVAL.bounds, STALL.bounds
# one render step stops after this much CPU time (at least one instance per step)
CHUNK_SECONDS = 0.0005

FAMILIES: list[Family] = []      # in exposition order


def _family(name: str, kind: str, help_: str) -> int:
    """Declare a family; its index in FAMILIES is where its sample lines are collected."""
    FAMILIES.append(Family(name, kind, help_))
    return len(FAMILIES) - 1


_C, _G, _H = "counter", "gauge", "histogram"
F_STATE = _family("vmacd_instance_state", _G, "VRRP state of the instance (1 = current)")
F_PRIORITY = _family("vmacd_instance_priority", _G, "Configured priority")
F_EFFECTIVE = _family("vmacd_instance_effective_priority", _G,
                      "Priority after tracking weights (0 while releasing)")
F_TRANSITIONS = _family("vmacd_transitions_total", _C, "State transitions")
F_LAST = _family("vmacd_last_transition_timestamp_seconds", _G,
                 "Unix time of the last transition (0: none yet)")
F_SENT = _family("vmacd_adverts_sent_total", _C, "Advertisements sent")
F_RECEIVED = _family("vmacd_adverts_received_total", _C, "Valid advertisements received")
F_DROPPED = _family("vmacd_packets_dropped_total", _C,
                    'Received packets refused, by reason (vrrp_instance="": matching no instance)')
F_LATE = _family("vmacd_adverts_late_total", _C, "Master advertisements later than warn_after")
F_INTERVAL = _family(INTERVAL.name, _H, "Observed time between the master's advertisements")
F_MASTER = _family("vmacd_master_seen_info", _G, "The master this instance hears (1)")
F_DUAL = _family("vmacd_dual_master_total", _C,
                 "Conflicts with another master that outlived one advertisement interval")
F_CHECKSUM = _family("vmacd_checksum_variant_total", _C, "IPv4 VRRPv3 checksum form used by peers")
F_TRACK = _family("vmacd_track_up", _G, "Tracked object state (1 up, 0 down)")
F_GARP = _family("vmacd_garp_sent_total", _C, "Gratuitous ARPs / unsolicited NAs sent")
F_P0_SENT = _family("vmacd_priority_zero_sent_total", _C,
                    "Priority-0 advertisements sent (this master resigning)")
F_P0_RECEIVED = _family("vmacd_priority_zero_received_total", _C,
                        "Priority-0 advertisements received (the master resigning)")
F_MAINTENANCE = _family("vmacd_maintenance", _G, "1 while the instance is in maintenance (drained)")
F_MISSING = _family("vmacd_interface_missing", _G,
                    "1 while the instance waits for its interface (missing, or without an address "
                    "to advertise from yet)")
F_RES_UP = _family("vmacd_resource_up", _G, "1 while the resource is started and its monitor passes")
F_RES_FAIL = _family("vmacd_resource_failures_total", _C,
                     "Resource commands that failed or timed out, by operation")
F_OWN = _family("vmacd_own_frame_received_total", _C,
                "Frames claiming to come from this router (its vMAC, or its address and VRID) "
                "that it did not send")
F_BUILD = _family("vmacd_build_info", _G, "vmacd version and node name (1)")
F_STALL = _family(STALL.name, _H, "How late event-loop timers fired")


class InstanceMetrics:
    """The series of one VRRP instance: plain numbers, turned into text when scraped."""

    def __init__(self, name: str, vrid: int, interface: str) -> None:
        self.labels = (name, str(vrid), interface)
        self.lbl = labels(list(zip(LABELS, self.labels, strict=True)))
        self.removed = False
        self.current = "init"
        self.configured = self.effective = 0
        self.transitions: dict[tuple[str, str], int] = {}
        self.last_transition = 0.0
        # per-packet numbers
        self.n_sent = 0
        self.n_received = 0
        self.n_dropped = dict.fromkeys(DROP_REASONS, 0)
        self.n_checksum: dict[str, int] = {}
        self.interval_counts = INTERVAL.new_counts()
        self.interval_sum = 0.0
        # the rest
        self.n_late = self.n_dual = self.n_garp = 0
        self.n_p0_sent = self.n_p0_received = 0
        self.master: str | None = None
        self.trackers: dict[str, int] = {}
        self.in_maintenance = 0
        self.missing = 0
        self.res_up: dict[str, int] = {}
        self.res_failures: dict[str, dict[str, int]] = {}
        self.n_own = dict.fromkeys(OWN_FRAME_KINDS, 0)

    # ------------------------------------------------------------------ per packet
    def advert_sent(self) -> None:
        self.n_sent += 1

    def advert_received(self) -> None:
        self.n_received += 1

    def dropped(self, reason: str) -> None:
        """Count a refused packet; `reason` is one of wire.DROP_REASONS."""
        try:
            self.n_dropped[reason] += 1
        except KeyError:
            raise ValueError(f"unknown drop reason {reason!r}") from None

    def interval(self, seconds: float) -> None:
        """Observe the time between two advertisements of the master."""
        self.interval_counts[bisect_left(_INTERVAL_BOUNDS, seconds)] += 1
        self.interval_sum += seconds

    def checksum_variant(self, v: str) -> None:
        """Count the checksum form (wire.CHECKSUM_*) a received IPv4 v3 advertisement used."""
        n = self.n_checksum
        n[v] = n.get(v, 0) + 1

    # ------------------------------------------------------------------ state
    def state(self, s: str) -> None:
        """Set the current state (one of STATES)."""
        if s not in STATES:
            raise ValueError(f"unknown state {s!r}; expected one of {', '.join(STATES)}")
        self.current = s

    def priority(self, p: int, effective: int) -> None:
        self.configured, self.effective = p, effective

    def transition(self, frm: str, to: str, ts: float) -> None:
        """Count a transition, stamp its (Unix) time and set the new state."""
        key = (frm, to)
        self.transitions[key] = self.transitions.get(key, 0) + 1
        self.last_transition = ts
        if to in STATES:
            self.current = to

    def late(self) -> None:
        self.n_late += 1

    def master_seen(self, addr: str | None) -> None:
        """The master this instance hears; one series at a time, None clears it."""
        self.master = addr

    def dual_master(self) -> None:
        """A conflict with another master that outlived one advertisement interval (the state
        machine decides; an ordinary preemption is not counted)."""
        self.n_dual += 1

    def garp_sent(self, n: int = 1) -> None:
        self.n_garp += n

    def priority_zero_sent(self) -> None:
        self.n_p0_sent += 1

    def priority_zero_received(self) -> None:
        self.n_p0_received += 1

    def maintenance(self, on: bool) -> None:
        self.in_maintenance = 1 if on else 0

    def interface_missing(self, missing: bool) -> None:
        """True while the configured interface does not exist (the instance waits for it)."""
        self.missing = 1 if missing else 0

    def own_frame(self, kind: str) -> None:
        """Count a frame that claims to be this router's but was not sent by it (OWN_FRAME_KINDS)."""
        try:
            self.n_own[kind] += 1
        except KeyError:
            raise ValueError(f"unknown own-frame kind {kind!r}; expected one of "
                             f"{', '.join(OWN_FRAME_KINDS)}") from None

    # ------------------------------------------------------------------ trackers, resources
    def track(self, tracker: str, up: bool) -> None:
        self.trackers[tracker] = 1 if up else 0

    def trackers_configured(self, names: Iterable[str]) -> None:
        """Drop the series of trackers that are no longer configured (after a reload)."""
        keep = set(names)
        for name in [t for t in self.trackers if t not in keep]:
            del self.trackers[name]

    def resources(self, names: Iterable[str]) -> None:
        """Declare the instance's resources: each shows up 0 and 0 failures per operation until
        told otherwise; resources no longer listed lose their series."""
        names = list(names)
        for name in names:
            self._resource(name)
        keep = set(names)
        for name in [r for r in self.res_up if r not in keep]:
            del self.res_up[name]
            del self.res_failures[name]

    def _resource(self, name: str) -> dict[str, int]:
        fails = self.res_failures.get(name)
        if fails is None:
            fails = self.res_failures[name] = dict.fromkeys(RESOURCE_OPS, 0)
            self.res_up[name] = 0
        return fails

    def resource_up(self, name: str, up: bool) -> None:
        """The resource is started and healthy (True), or stopped or failed (False)."""
        self._resource(name)
        self.res_up[name] = 1 if up else 0

    def resource_failure(self, name: str, op: str) -> None:
        """A resource's `op` command (RESOURCE_OPS) failed or timed out."""
        fails = self._resource(name)
        if op not in fails:
            raise ValueError(f"unknown resource operation {op!r}; expected one of "
                             f"{', '.join(RESOURCE_OPS)}")
        fails[op] += 1

    def remove(self) -> None:
        """Stop exposing this instance (its Metrics forgets it on the next `instance()` call)."""
        self.removed = True

    # ------------------------------------------------------------------ text
    def render_into(self, parts: list[list[str]]) -> None:
        """Append this instance's sample lines to `parts[family index]`."""
        self._render_vrrp(parts, self.lbl)
        self._render_node(parts, self.lbl)

    def _render_vrrp(self, parts: list[list[str]], lbl: str) -> None:
        cur = self.current
        parts[F_STATE].append("".join(
            f'vmacd_instance_state{{{lbl},state="{s}"}} {1 if s == cur else 0}\n' for s in STATES))
        parts[F_PRIORITY].append(f"vmacd_instance_priority{{{lbl}}} {self.configured}\n")
        parts[F_EFFECTIVE].append(f"vmacd_instance_effective_priority{{{lbl}}} {self.effective}\n")
        parts[F_TRANSITIONS].append("".join(
            f'vmacd_transitions_total{{{lbl},from="{escape_label(f)}",to="{escape_label(t)}"}} {n}\n'
            for (f, t), n in self.transitions.items()))
        parts[F_LAST].append(f"vmacd_last_transition_timestamp_seconds{{{lbl}}} "
                             f"{number(self.last_transition)}\n")
        parts[F_SENT].append(f"vmacd_adverts_sent_total{{{lbl}}} {self.n_sent}\n")
        parts[F_RECEIVED].append(f"vmacd_adverts_received_total{{{lbl}}} {self.n_received}\n")
        parts[F_DROPPED].append("".join(f'vmacd_packets_dropped_total{{{lbl},reason="{r}"}} {n}\n'
                                        for r, n in self.n_dropped.items()))
        parts[F_LATE].append(f"vmacd_adverts_late_total{{{lbl}}} {self.n_late}\n")
        parts[F_INTERVAL].append(INTERVAL.lines(lbl, self.interval_counts, self.interval_sum))
        if self.master is not None:
            parts[F_MASTER].append(
                f'vmacd_master_seen_info{{{lbl},master="{escape_label(self.master)}"}} 1\n')
        parts[F_DUAL].append(f"vmacd_dual_master_total{{{lbl}}} {self.n_dual}\n")
        parts[F_CHECKSUM].append("".join(
            f'vmacd_checksum_variant_total{{{lbl},variant="{escape_label(v)}"}} {n}\n'
            for v, n in self.n_checksum.items()))
        parts[F_GARP].append(f"vmacd_garp_sent_total{{{lbl}}} {self.n_garp}\n")
        parts[F_P0_SENT].append(f"vmacd_priority_zero_sent_total{{{lbl}}} {self.n_p0_sent}\n")
        parts[F_P0_RECEIVED].append(f"vmacd_priority_zero_received_total{{{lbl}}} {self.n_p0_received}\n")
        parts[F_OWN].append("".join(f'vmacd_own_frame_received_total{{{lbl},kind="{k}"}} {n}\n'
                                    for k, n in self.n_own.items()))

    def _render_node(self, parts: list[list[str]], lbl: str) -> None:
        parts[F_TRACK].append("".join(f'vmacd_track_up{{{lbl},tracker="{escape_label(t)}"}} {up}\n'
                                      for t, up in self.trackers.items()))
        parts[F_MAINTENANCE].append(f"vmacd_maintenance{{{lbl}}} {self.in_maintenance}\n")
        parts[F_MISSING].append(f"vmacd_interface_missing{{{lbl}}} {self.missing}\n")
        for res, up in self.res_up.items():
            rl = f'{lbl},resource="{escape_label(res)}"'
            parts[F_RES_UP].append(f"vmacd_resource_up{{{rl}}} {up}\n")
            parts[F_RES_FAIL].append("".join(f'vmacd_resource_failures_total{{{rl},op="{op}"}} {n}\n'
                                             for op, n in self.res_failures[res].items()))


class Render:
    """One scrape's text, built in steps of about CHUNK_SECONDS: `step()` until it returns True,
    then `chunks()` (the page in pieces, to send one after the other) or `result()`. Instances
    added after the start are in the next scrape; instances removed meanwhile are left out."""

    def __init__(self, metrics: Metrics, chunk: float = CHUNK_SECONDS) -> None:
        self._m = metrics
        self._todo = list(metrics._instances.values())
        self._pos = 0
        self._chunk = chunk
        self._parts: list[list[str]] = [[] for _ in FAMILIES]
        self._family = -1                        # -1: instances still to render
        self._out: list[bytes] = []
        self.done = False
        self.steps = 0

    def step(self) -> bool:
        """Render the next few instances, or join the next few families. True when done."""
        if self.done:
            return True
        self.steps += 1
        end = time.perf_counter() + self._chunk
        if self._family < 0:
            todo, parts = self._todo, self._parts
            while self._pos < len(todo):
                im = todo[self._pos]
                self._pos += 1
                if not im.removed:
                    im.render_into(parts)
                if time.perf_counter() >= end:
                    return False
            self._m._render_globals(parts)
            self._family = 0
        while self._family < len(FAMILIES):
            i = self._family
            self._family += 1
            # HELP and TYPE even without samples (no master heard yet): every family is listed
            self._out.append((FAMILIES[i].header() + "".join(self._parts[i])).encode())
            self._parts[i] = []
            if time.perf_counter() >= end:
                return False
        self._out.append(self._m.process.render().encode())
        self.done = True
        return True

    def chunks(self) -> list[bytes]:
        if not self.done:
            raise RuntimeError("render not finished")
        return self._out

    def result(self) -> bytes:
        return b"".join(self.chunks())


class Metrics:
    """The daemon's metrics: one InstanceMetrics per instance, global series, the endpoint."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._instances: dict[str, InstanceMetrics] = {}
        self._unknown: dict[tuple[str, str, str], int] = {}
        self.stall_counts = STALL.new_counts()
        self.stall_sum = 0.0
        self.process = ProcessStats()
        self._server: MetricsServer | None = None

    def build_info(self, node: str) -> None:
        """Set the node name shown on vmacd_build_info."""
        self.node = node

    def instance(self, name: str, vrid: int, interface: str) -> InstanceMetrics:
        """The InstanceMetrics of `name`; a new one if its vrid or interface changed."""
        im = self._instances.get(name)
        if im is not None and not im.removed and im.labels == (name, str(vrid), interface):
            return im
        if im is not None:
            im.remove()
        im = self._instances[name] = InstanceMetrics(name, vrid, interface)
        return im

    def remove_instance(self, name: str) -> None:
        """Forget an instance (a reload removed it); unknown names are ignored."""
        im = self._instances.pop(name, None)
        if im is not None:
            im.remove()

    def dropped_unknown(self, reason: str, vrid: int | None, interface: str) -> None:
        """Count a refused packet that matches no instance (label vrrp_instance="")."""
        if reason not in _REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        key = ("" if vrid is None else str(vrid), interface, reason)
        self._unknown[key] = self._unknown.get(key, 0) + 1

    def stall(self, seconds: float) -> None:
        """Observe how late a loop timer fired (`Loop.on_late`)."""
        self.stall_counts[bisect_left(_STALL_BOUNDS, seconds)] += 1
        self.stall_sum += seconds

    def _render_globals(self, parts: list[list[str]]) -> None:
        for (vrid, ifname, reason), n in self._unknown.items():
            parts[F_DROPPED].append(f'vmacd_packets_dropped_total{{vrrp_instance="",vrid="{vrid}",'
                                    f'interface="{escape_label(ifname)}",reason="{reason}"}} {n}\n')
        parts[F_BUILD].append(f'vmacd_build_info{{version="{escape_label(__version__)}",'
                              f'node="{escape_label(self.node)}"}} 1\n')
        parts[F_STALL].append(STALL.lines("", self.stall_counts, self.stall_sum))

    def renderer(self, chunk: float = CHUNK_SECONDS) -> Render:
        """A scrape to build step by step (the endpoint runs one step per loop iteration)."""
        self._instances = {k: v for k, v in self._instances.items() if not v.removed}
        return Render(self, chunk)

    def render(self) -> bytes:
        """The whole exposition text at once, as a scrape would see it."""
        r = self.renderer()
        while not r.step():
            pass
        return r.result()

    def serve(self, loop: Loop, listen: str) -> tuple[str, int] | None:
        """Serve GET /metrics on `listen` ("" = disabled) from `loop`. Returns the bound address.
        Raises MetricsError naming `listen` when it is malformed or cannot be bound."""
        if not listen:
            return None
        self.close()
        self._server = MetricsServer(loop, listen, self.renderer)
        return self._server.address

    def close(self) -> None:
        """Stop the endpoint and drop its connections."""
        if self._server is not None:
            self._server.close()
            self._server = None
