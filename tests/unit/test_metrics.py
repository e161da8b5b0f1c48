"""Prometheus metrics: every SPEC §7 name, labels, lifecycle, and the HTTP endpoint."""
from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmacd import __version__
from vmacd.control.metrics import STATES, Metrics, MetricsError, parse_listen
from vmacd.core.wire import DROP_REASONS

SPEC_NAMES = [
    "vmacd_instance_state", "vmacd_instance_priority", "vmacd_instance_effective_priority",
    "vmacd_transitions_total", "vmacd_last_transition_timestamp_seconds",
    "vmacd_adverts_sent_total", "vmacd_adverts_received_total", "vmacd_packets_dropped_total",
    "vmacd_adverts_late_total", "vmacd_advert_interval_seconds_bucket", "vmacd_master_seen_info",
    "vmacd_dual_master_total", "vmacd_checksum_variant_total", "vmacd_track_up",
    "vmacd_garp_sent_total", "vmacd_build_info",
]
SPEC_REASONS = {"ttl", "checksum", "version", "type", "length", "vrid", "auth", "replay",
                "interval", "addresses", "malformed"}


def samples(m: Metrics) -> list:
    return [s for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    for s in samples(m):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def exercised() -> Metrics:
    m = Metrics()
    i = m.instance("lan", 51, "eth1")
    i.priority(150, 100)
    i.transition("backup", "master", 1_700_000_000.5)
    i.advert_sent()
    i.advert_received()
    i.dropped("ttl")
    i.late()
    i.interval(0.1)
    i.master_seen("192.0.2.1")
    i.dual_master()
    i.garp_sent(3)
    i.checksum_variant("pseudo-header")
    i.track("eth0", False)
    return m


def test_every_spec_name_is_exposed():
    text = exercised().render().decode()
    for name in SPEC_NAMES:
        assert f"\n{name}{{" in text or text.startswith(f"{name}{{"), name


def test_drop_reasons_match_spec_and_are_precreated_at_zero():
    assert set(DROP_REASONS) == SPEC_REASONS
    m = Metrics()
    m.instance("lan", 51, "eth1")
    got = {s.labels["reason"]: s.value for s in samples(m) if s.name == "vmacd_packets_dropped_total"}
    assert got == {r: 0.0 for r in SPEC_REASONS}


def test_per_instance_series_carry_instance_vrid_interface():
    for s in samples(exercised()):
        if s.name.startswith(("vmacd_build_info", "vmacd_stall_seconds")):
            continue
        assert s.labels["instance"] == "lan" and s.labels["vrid"] == "51" and s.labels["interface"] == "eth1", s


def test_values_follow_the_calls():
    m = exercised()
    lv = {"instance": "lan", "vrid": "51", "interface": "eth1"}
    assert value(m, "vmacd_instance_priority", **lv) == 150
    assert value(m, "vmacd_instance_effective_priority", **lv) == 100
    assert value(m, "vmacd_transitions_total", **lv, **{"from": "backup", "to": "master"}) == 1
    assert value(m, "vmacd_last_transition_timestamp_seconds", **lv) == 1_700_000_000.5
    assert value(m, "vmacd_packets_dropped_total", **lv, reason="ttl") == 1
    assert value(m, "vmacd_packets_dropped_total", **lv, reason="auth") == 0
    assert value(m, "vmacd_garp_sent_total", **lv) == 3
    assert value(m, "vmacd_track_up", **lv, tracker="eth0") == 0
    assert value(m, "vmacd_checksum_variant_total", **lv, variant="pseudo-header") == 1
    assert value(m, "vmacd_advert_interval_seconds_bucket", **lv, le="0.1") == 1
    assert value(m, "vmacd_advert_interval_seconds_bucket", **lv, le="0.05") == 0


def test_state_is_an_enum_with_one_current_state():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")

    def states() -> dict:
        return {s.labels["state"]: s.value for s in samples(m) if s.name == "vmacd_instance_state"}

    assert states() == {"init": 1, "backup": 0, "master": 0, "fault": 0, "stopped": 0}
    i.transition("init", "backup", 1.0)
    i.state("fault")
    assert states() == {s: (1 if s == "fault" else 0) for s in STATES}
    with pytest.raises(ValueError, match="unknown state"):
        i.state("active")
    with pytest.raises(ValueError, match="unknown drop reason"):
        i.dropped("bogus")


def test_master_seen_keeps_one_series():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")
    i.master_seen("192.0.2.1")
    i.master_seen("192.0.2.1")
    i.master_seen("192.0.2.2")
    seen = [s.labels["master"] for s in samples(m) if s.name == "vmacd_master_seen_info"]
    assert seen == ["192.0.2.2"]
    i.master_seen(None)
    assert not [s for s in samples(m) if s.name == "vmacd_master_seen_info"]


def test_remove_instance_drops_only_its_series():
    m = exercised()
    w = m.instance("wan", 7, "eth2")
    w.track("httpd", True)
    m.remove_instance("lan")
    m.remove_instance("never-existed")
    left = {s.labels.get("instance") for s in samples(m) if "instance" in s.labels}
    assert left == {"wan"}
    assert m.instance("wan", 7, "eth2") is w             # same labels: same object
    w2 = m.instance("wan", 8, "eth2")                    # vrid changed on reload
    assert w2 is not w
    assert {s.labels["vrid"] for s in samples(m) if s.labels.get("instance") == "wan"} == {"8"}


def test_dropped_unknown_uses_an_empty_instance_label():
    m = Metrics()
    m.dropped_unknown("vrid", 99, "eth1")
    m.dropped_unknown("malformed", None, "eth1")
    assert value(m, "vmacd_packets_dropped_total", instance="", vrid="99", reason="vrid") == 1
    assert value(m, "vmacd_packets_dropped_total", vrid="", reason="malformed") == 1
    with pytest.raises(ValueError):
        m.dropped_unknown("nope", 1, "eth1")


def test_hot_path_is_cheap():
    i = Metrics().instance("lan", 51, "eth1")
    t0 = time.perf_counter()
    for _ in range(20000):
        i.advert_received()
        i.master_seen("192.0.2.1")
        i.interval(0.1)
    per_call = (time.perf_counter() - t0) / 60000
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per call"


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


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def test_http_endpoint_on_loopback_shows_spec_names():
    m = exercised()
    assert m.serve(None, "") is None
    _host, port = m.serve(None, "127.0.0.1:0")
    try:
        status, ctype, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        for name in SPEC_NAMES:
            assert name in body, name
        # a busy port is a clear error
        with pytest.raises(MetricsError, match=f"127.0.0.1:{port}"):
            Metrics().serve(None, f"127.0.0.1:{port}")
    finally:
        m.close()


def test_http_endpoint_on_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    m = exercised()
    _, port = m.serve(None, "[::1]:0")
    try:
        status, _, body = _get(f"http://[::1]:{port}/metrics")
        assert status == 200 and "vmacd_instance_state" in body
    finally:
        m.close()
