"""Prometheus metrics (docs/operation.md), on a registry of our own.

Every per-instance series carries the labels `instance`, `vrid`, `interface`. The daemon gets one
`InstanceMetrics` per VRRP instance; its methods are on the packet path, so they use label
children cached at creation (no label lookup, no dict building per packet).

The per-packet series (adverts sent and received, checksum variant, advertisement interval) are
plain integers in `InstanceMetrics`, turned into metric families only when scraped (`_HotSeries`,
a custom collector): a prometheus_client child takes a lock per update, which cost more than the
rest of the receive path's bookkeeping together at 2000 adverts/s.

Scrape note: Prometheus renames our `instance` label to `exported_instance` unless the scrape job
sets `honor_labels: true`; appliance/prometheus/vmacd.rules.yml assumes the default (renamed).
"""
from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.exposition import generate_latest, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from vmacd import __version__
from vmacd.core.wire import DROP_REASONS

STATES = ("init", "backup", "master", "fault", "stopped")
LABELS = ("instance", "vrid", "interface")
# instance label of packets that match no configured instance (unknown VRID, undecodable)
UNKNOWN_INSTANCE = ""
# observed master advertisement intervals: RFC 9568 allows 10 ms .. 40.95 s; buckets sit just
# above the common settings (100 ms, 1 s) so "late" shows as a bucket shift
INTERVAL_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.12, 0.2, 0.25, 0.5, 1.0, 1.2, 2.0, 3.0, 5.0,
                    10.0, 20.0, 41.0)


class MetricsError(ValueError):
    """Bad `metrics_listen` value or the endpoint cannot be bound."""


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


class _Family:
    """The metric families, created once per Metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        # an Enum (stateset) with the label `state` as docs/operation.md names it; prometheus_client's
        # Enum would name the label after the metric, so it is built from a Gauge
        self.state = Gauge("vmacd_instance_state", "VRRP state of the instance (1 = current)",
                           LABELS + ("state",), registry=r)
        self.priority = Gauge("vmacd_instance_priority", "Configured priority", LABELS, registry=r)
        self.effective = Gauge("vmacd_instance_effective_priority",
                               "Priority after tracking weights (0 while releasing)", LABELS, registry=r)
        self.transitions = Counter("vmacd_transitions_total", "State transitions",
                                   LABELS + ("from", "to"), registry=r)
        self.last_transition = Gauge("vmacd_last_transition_timestamp_seconds",
                                     "Unix time of the last transition", LABELS, registry=r)
        self.dropped = Counter("vmacd_packets_dropped_total", "Received packets refused, by reason",
                               LABELS + ("reason",), registry=r)
        self.late = Counter("vmacd_adverts_late_total", "Master advertisements later than warn_after",
                            LABELS, registry=r)
        self.master_seen = Gauge("vmacd_master_seen_info", "The master this instance hears (1)",
                                 LABELS + ("master",), registry=r)
        self.dual_master = Counter("vmacd_dual_master_total",
                                   "Another master heard while master", LABELS, registry=r)
        self.track = Gauge("vmacd_track_up", "Tracked object state (1 up, 0 down)",
                           LABELS + ("tracker",), registry=r)
        self.garp = Counter("vmacd_garp_sent_total", "Gratuitous ARPs / unsolicited NAs sent",
                            LABELS, registry=r)
        self.build = Info("vmacd_build", "vmacd build", registry=r)
        self.build.info({"version": __version__})
        self.hot = _HotSeries()
        r.register(self.hot)


class _HotSeries:
    """Collector of the per-packet series, read from the live InstanceMetrics at scrape time.

    The event loop only adds to plain ints; a scrape (HTTP thread) reads them. Single integer
    reads and writes are atomic under the GIL, so a scrape sees each value as it was at some
    moment (a histogram's buckets may be one observation apart from its count: Prometheus allows
    that for a live histogram)."""

    def __init__(self) -> None:
        self.instances: dict[tuple[str, ...], InstanceMetrics] = {}

    def collect(self) -> Iterator[Metric]:
        live = list(self.instances.values())
        sent = CounterMetricFamily("vmacd_adverts_sent_total", "Advertisements sent", labels=LABELS)
        received = CounterMetricFamily("vmacd_adverts_received_total",
                                       "Valid advertisements received", labels=LABELS)
        checksum = CounterMetricFamily("vmacd_checksum_variant_total",
                                       "IPv4 VRRPv3 checksum form used by peers",
                                       labels=LABELS + ("variant",))
        interval = HistogramMetricFamily("vmacd_advert_interval_seconds",
                                         "Observed time between the master's advertisements",
                                         labels=LABELS)
        for im in live:
            sent.add_metric(im.labels, im.n_sent)
            received.add_metric(im.labels, im.n_received)
            for variant, n in list(im.n_checksum.items()):
                checksum.add_metric(im.labels + (variant,), n)
            counts, total = list(im.interval_counts), im.interval_sum
            cum, buckets = 0, []
            for bound, n in zip(INTERVAL_BUCKETS + (float("inf"),), counts, strict=True):
                cum += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
            interval.add_metric(im.labels, buckets, total)
        yield from (sent, received, checksum, interval)


class InstanceMetrics:
    """The series of one VRRP instance; cheap hot-path methods."""

    def __init__(self, fam: _Family, name: str, vrid: int, interface: str) -> None:
        self._fam = fam
        self.labels = (name, str(vrid), interface)
        self._children: list[tuple[Any, tuple[str, ...]]] = []
        lv = self.labels
        self._states = {s: self._child(fam.state, lv + (s,)) for s in STATES}
        self._current = ""
        self.state("init")
        self._priority = self._child(fam.priority, lv)
        self._effective = self._child(fam.effective, lv)
        self._last = self._child(fam.last_transition, lv)
        self._late = self._child(fam.late, lv)
        # per-packet series: plain ints, read by _HotSeries when scraped
        self.n_sent = 0
        self.n_received = 0
        self.n_checksum: dict[str, int] = {}
        self.interval_counts = [0] * (len(INTERVAL_BUCKETS) + 1)    # per bucket, last = +Inf
        self.interval_sum = 0.0
        fam.hot.instances[lv] = self
        self._dual = self._child(fam.dual_master, lv)
        self._garp = self._child(fam.garp, lv)
        self._dropped = {r: self._child(fam.dropped, lv + (r,)) for r in DROP_REASONS}
        self._transitions: dict[tuple[str, str], Any] = {}
        self._track: dict[str, Any] = {}
        self._master: str | None = None
        self._master_child: Any = None

    def _child(self, metric: Any, labelvalues: tuple[str, ...]) -> Any:
        self._children.append((metric, labelvalues))
        return metric.labels(*labelvalues)

    def state(self, s: str) -> None:
        """Set the Enum state (one of STATES)."""
        if s not in STATES:
            raise ValueError(f"unknown state {s!r}; expected one of {', '.join(STATES)}")
        if s == self._current:
            return
        if self._current:
            self._states[self._current].set(0)
        self._states[s].set(1)
        self._current = s

    def priority(self, p: int, effective: int) -> None:
        self._priority.set(p)
        self._effective.set(effective)

    def transition(self, frm: str, to: str, ts: float) -> None:
        """Count a transition, stamp its time and set the new state."""
        child = self._transitions.get((frm, to))
        if child is None:
            child = self._transitions[(frm, to)] = self._child(self._fam.transitions, self.labels + (frm, to))
        child.inc()
        self._last.set(ts)
        if to in STATES:
            self.state(to)

    def advert_sent(self) -> None:
        self.n_sent += 1

    def advert_received(self) -> None:
        self.n_received += 1

    def dropped(self, reason: str) -> None:
        """Count a refused packet; `reason` is one of wire.DROP_REASONS."""
        child = self._dropped.get(reason)
        if child is None:
            raise ValueError(f"unknown drop reason {reason!r}")
        child.inc()

    def late(self) -> None:
        self._late.inc()

    def interval(self, seconds: float) -> None:
        self.interval_counts[bisect.bisect_left(INTERVAL_BUCKETS, seconds)] += 1
        self.interval_sum += seconds

    def master_seen(self, addr: str | None) -> None:
        """The master this instance hears; one series at a time, None clears it."""
        if addr == self._master:
            return
        if self._master_child is not None and self._master is not None:
            self._remove(self._fam.master_seen, self.labels + (self._master,))
            self._master_child = None
        self._master = addr
        if addr is not None:
            self._master_child = self._child(self._fam.master_seen, self.labels + (addr,))
            self._master_child.set(1)

    def dual_master(self) -> None:
        self._dual.inc()

    def garp_sent(self, n: int = 1) -> None:
        self._garp.inc(n)

    def checksum_variant(self, v: str) -> None:
        self.n_checksum[v] = self.n_checksum.get(v, 0) + 1

    def track(self, tracker: str, up: bool) -> None:
        child = self._track.get(tracker)
        if child is None:
            child = self._track[tracker] = self._child(self._fam.track, self.labels + (tracker,))
        child.set(1 if up else 0)

    def _remove(self, metric: Any, labelvalues: tuple[str, ...]) -> None:
        try:
            metric.remove(*labelvalues)
        except KeyError:
            pass
        self._children = [c for c in self._children if c != (metric, labelvalues)]

    def remove(self) -> None:
        """Drop every series of this instance from the registry."""
        if self._fam.hot.instances.get(self.labels) is self:
            del self._fam.hot.instances[self.labels]
        for metric, labelvalues in self._children:
            try:
                metric.remove(*labelvalues)
            except KeyError:
                pass
        self._children.clear()


class Metrics:
    """The daemon's metrics: one registry, one InstanceMetrics per instance, an HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._fam = _Family(self.registry)
        self._instances: dict[str, InstanceMetrics] = {}
        self._unknown: dict[tuple[str, str, str], Any] = {}
        self._http: Any = None

    def instance(self, name: str, vrid: int, interface: str) -> InstanceMetrics:
        """The InstanceMetrics of `name`; re-created if its vrid or interface changed."""
        im = self._instances.get(name)
        if im is not None and im.labels == (name, str(vrid), interface):
            return im
        if im is not None:
            im.remove()
        im = self._instances[name] = InstanceMetrics(self._fam, name, vrid, interface)
        return im

    def remove_instance(self, name: str) -> None:
        """Forget an instance (reload removed it); unknown names are ignored."""
        im = self._instances.pop(name, None)
        if im is not None:
            im.remove()

    def dropped_unknown(self, reason: str, vrid: int | None, interface: str) -> None:
        """Count a refused packet that matches no instance (label instance="")."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        key = ("" if vrid is None else str(vrid), interface, reason)
        child = self._unknown.get(key)
        if child is None:
            child = self._unknown[key] = self._fam.dropped.labels(UNKNOWN_INSTANCE, *key)
        child.inc()

    def render(self) -> bytes:
        """The exposition text, as a scrape would see it."""
        return generate_latest(self.registry)

    def serve(self, listen: str) -> tuple[str, int] | None:
        """Start the HTTP endpoint on `listen` ("" = disabled). Returns the bound (host, port)."""
        if not listen:
            return None
        host, port = parse_listen(listen)
        try:
            result = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"metrics_listen {listen}: {exc.strerror or exc}") from exc
        if isinstance(result, tuple):  # prometheus-client >= 0.17 returns (server, thread)
            self._http = result[0]       # the serving thread is a daemon thread: nothing to keep
            return self._http.server_address[0], self._http.server_address[1]
        return host, port

    def close(self) -> None:
        """Stop the HTTP endpoint (if this prometheus-client lets us)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
