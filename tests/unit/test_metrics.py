"""Metrics model and exposition: every series of docs/metrics.md, its labels and values, checked
by an independent parser (prometheus_client's) and by `promtool check metrics`; the render in
steps; the cost of the per-packet methods."""
from __future__ import annotations

import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
import time
import timeit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vmacd import __version__
from vmacd.control.metrics import (
    FAMILIES,
    INTERVAL,
    OWN_FRAME_KINDS,
    RESOURCE_OPS,
    STALL,
    STATES,
    Metrics,
)
from vmacd.core.wire import DROP_REASONS

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
PROMTOOL = shutil.which("promtool")
LV = {"vrrp_instance": "lan", "vrid": "51", "interface": "eth1"}
REASONS = {"ttl", "checksum", "version", "type", "length", "vrid", "auth", "replay", "interval",
           "addresses", "malformed"}
PROCESS = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
           "process_start_time_seconds", "process_open_fds", "process_max_fds"}
# names the product contract fixes; the exposition may not lose any of them
CONTRACT = {
    "vmacd_instance_state", "vmacd_instance_priority", "vmacd_instance_effective_priority",
    "vmacd_transitions_total", "vmacd_last_transition_timestamp_seconds",
    "vmacd_adverts_sent_total", "vmacd_adverts_received_total", "vmacd_packets_dropped_total",
    "vmacd_adverts_late_total", "vmacd_advert_interval_seconds", "vmacd_master_seen_info",
    "vmacd_dual_master_total", "vmacd_checksum_variant_total", "vmacd_track_up",
    "vmacd_garp_sent_total", "vmacd_build_info", "vmacd_priority_zero_sent_total",
    "vmacd_priority_zero_received_total", "vmacd_maintenance", "vmacd_resource_up",
    "vmacd_resource_failures_total", "vmacd_stall_seconds", "vmacd_own_frame_received_total",
} | PROCESS


def families(m: Metrics) -> dict:
    """{family name as written in the text: family}, parsed by prometheus_client."""
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        out[name] = fam
    return out


def samples(m: Metrics) -> list:
    return [s for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples(m)
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name} {labels}: {len(found)} series"
    return found[0] if found else None


def exercised(node: str = "r1") -> Metrics:
    m = Metrics(node=node)
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
    i.priority_zero_sent()
    i.priority_zero_received()
    i.priority_zero_received()
    i.maintenance(True)
    i.interface_missing(False)
    i.resources(["httpd", "db"])
    i.resource_up("httpd", True)
    i.resource_failure("db", "monitor")
    i.own_frame("reported")
    m.dropped_unknown("vrid", 99, "eth1")
    m.stall(0.0003)
    return m


def test_every_family_is_exposed_with_its_type_and_help():
    fams = families(exercised())
    assert set(fams) == {f.name for f in FAMILIES} | PROCESS
    assert set(fams) >= CONTRACT
    for f in FAMILIES:
        assert fams[f.name].type == f.type and fams[f.name].documentation == f.help, f.name
    for name in fams:
        if fams[name].type == "counter":
            assert name.endswith("_total"), name


def test_every_family_is_listed_even_without_samples():
    text = Metrics().render().decode()
    for f in FAMILIES:
        assert f"# HELP {f.name} " in text and f"# TYPE {f.name} {f.type}\n" in text, f.name
    assert "vmacd_master_seen_info{" not in text and "vmacd_instance_state{" not in text


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (apt-get install prometheus)")
def test_promtool_check_metrics_is_clean():
    m = exercised()
    i = m.instance("odd", 7, "eth2")
    i.track('quote"back\\slash\nnewline é', True)       # every escape, and UTF-8
    i.master_seen("2001:db8::1")
    for k in range(1, 256):
        m.instance(f"vr{k}", k, "eth3").interval(k / 100)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=m.render(), capture_output=True, timeout=60,
                       check=False)
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", p.stdout + p.stderr


def test_label_values_are_escaped_and_parse_back():
    m = Metrics()
    weird = 'quote"back\\slash\nnewline é'
    m.instance("lan", 51, "eth1").track(weird, True)
    got = [s.labels["tracker"] for s in samples(m) if s.name == "vmacd_track_up"]
    assert got == [weird]
    assert 'tracker="quote\\"back\\\\slash\\nnewline é"' in m.render().decode()


def test_drop_reasons_are_precreated_at_zero():
    assert set(DROP_REASONS) == REASONS
    m = Metrics()
    m.instance("lan", 51, "eth1")
    got = {s.labels["reason"]: s.value for s in samples(m) if s.name == "vmacd_packets_dropped_total"}
    assert got == dict.fromkeys(REASONS, 0.0)


def test_per_instance_series_carry_vrrp_instance_vrid_interface_and_never_instance():
    for s in samples(exercised()):
        assert "instance" not in s.labels, s
        if s.name.startswith(("vmacd_build_info", "vmacd_stall_seconds", "process_")):
            continue
        if s.labels.get("vrrp_instance") == "":       # the packet matched no instance
            assert s.name == "vmacd_packets_dropped_total" and s.labels["vrid"] == "99"
            continue
        assert {k: s.labels[k] for k in LV} == LV, s


def test_build_info_names_version_and_node():
    m = exercised(node="r1.paris")
    assert value(m, "vmacd_build_info", version=__version__, node="r1.paris") == 1
    m.build_info("r2")
    assert value(m, "vmacd_build_info", node="r2") == 1
    assert value(m, "vmacd_build_info", node="r1.paris") is None


def test_values_follow_the_calls():
    m = exercised()
    assert value(m, "vmacd_instance_priority", **LV) == 150
    assert value(m, "vmacd_instance_effective_priority", **LV) == 100
    assert value(m, "vmacd_transitions_total", **LV, **{"from": "backup", "to": "master"}) == 1
    assert value(m, "vmacd_last_transition_timestamp_seconds", **LV) == 1_700_000_000.5
    assert value(m, "vmacd_adverts_sent_total", **LV) == 1
    assert value(m, "vmacd_adverts_received_total", **LV) == 1
    assert value(m, "vmacd_packets_dropped_total", **LV, reason="ttl") == 1
    assert value(m, "vmacd_packets_dropped_total", **LV, reason="auth") == 0
    assert value(m, "vmacd_adverts_late_total", **LV) == 1
    assert value(m, "vmacd_dual_master_total", **LV) == 1
    assert value(m, "vmacd_garp_sent_total", **LV) == 3
    assert value(m, "vmacd_track_up", **LV, tracker="eth0") == 0
    assert value(m, "vmacd_checksum_variant_total", **LV, variant="pseudo-header") == 1
    assert value(m, "vmacd_priority_zero_sent_total", **LV) == 1
    assert value(m, "vmacd_priority_zero_received_total", **LV) == 2
    assert value(m, "vmacd_maintenance", **LV) == 1
    assert value(m, "vmacd_interface_missing", **LV) == 0
    assert value(m, "vmacd_resource_up", **LV, resource="httpd") == 1
    assert value(m, "vmacd_resource_up", **LV, resource="db") == 0
    assert value(m, "vmacd_resource_failures_total", **LV, resource="db", op="monitor") == 1
    assert value(m, "vmacd_resource_failures_total", **LV, resource="httpd", op="start") == 0
    assert value(m, "vmacd_own_frame_received_total", **LV, kind="reported") == 1
    assert value(m, "vmacd_own_frame_received_total", **LV, kind="reasserted") == 0
    assert value(m, "vmacd_packets_dropped_total", vrrp_instance="", vrid="99", reason="vrid") == 1
    i = m.instance("lan", 51, "eth1")
    i.maintenance(False)
    i.interface_missing(True)
    assert value(m, "vmacd_maintenance", **LV) == 0 and value(m, "vmacd_interface_missing", **LV) == 1


def test_histograms_are_cumulative_with_inf_sum_and_count():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")
    for s in (0.005, 0.1, 0.1, 0.11, 1.0, 99.0):
        i.interval(s)
    for s in (0.00005, 0.0002, 0.004, 3.0, 60.0):
        m.stall(s)
    fams = families(m)
    for name, shape, total, n in (("vmacd_advert_interval_seconds", INTERVAL, 100.315, 6),
                                  ("vmacd_stall_seconds", STALL, 63.00425, 5)):
        buckets = [(s.labels["le"], s.value) for s in fams[name].samples if s.name == f"{name}_bucket"]
        assert [le for le, _ in buckets] == [repr(b) for b in shape.bounds] + ["+Inf"]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and counts[-1] == n
        by_name = {s.name: s.value for s in fams[name].samples}
        assert by_name[f"{name}_count"] == n and by_name[f"{name}_sum"] == pytest.approx(total)
    le = {s.labels["le"]: s.value for s in fams["vmacd_advert_interval_seconds"].samples
          if s.name.endswith("_bucket")}
    assert (le["0.01"], le["0.1"], le["0.12"], le["1.0"], le["41.0"]) == (1, 3, 4, 5, 5)
    # the loop's lateness: from an idle loop's ~100 µs to failover-sized stalls
    assert STALL.bounds[0] <= 0.0001 and STALL.bounds[-1] >= 5


def test_state_is_a_stateset_with_one_current_state():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")

    def states() -> dict:
        return {s.labels["state"]: s.value for s in samples(m) if s.name == "vmacd_instance_state"}

    assert states() == {"init": 1, "backup": 0, "master": 0, "fault": 0, "stopped": 0}
    i.transition("init", "backup", 1.0)
    assert states()["backup"] == 1
    i.state("fault")
    assert states() == {s: (1 if s == "fault" else 0) for s in STATES}


@pytest.mark.parametrize("call, match", [
    (lambda i: i.state("active"), "unknown state 'active'"),
    (lambda i: i.dropped("bogus"), "unknown drop reason 'bogus'"),
    (lambda i: i.own_frame("mirror"), "unknown own-frame kind 'mirror'"),
    (lambda i: i.resource_failure("httpd", "restart"), "unknown resource operation 'restart'"),
])
def test_bad_values_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call(Metrics().instance("lan", 51, "eth1"))
    with pytest.raises(ValueError, match="unknown drop reason 'nope'"):
        Metrics().dropped_unknown("nope", 1, "eth1")


def test_master_seen_keeps_one_series():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")
    i.master_seen("192.0.2.1")
    i.master_seen("192.0.2.2")
    assert [s.labels["master"] for s in samples(m) if s.name == "vmacd_master_seen_info"] == ["192.0.2.2"]
    i.master_seen(None)
    assert not [s for s in samples(m) if s.name == "vmacd_master_seen_info"]


def test_resources_and_trackers_follow_the_config():
    m = Metrics()
    i = m.instance("lan", 51, "eth1")
    i.resources(["httpd", "db"])
    fails = {(s.labels["resource"], s.labels["op"]) for s in samples(m)
             if s.name == "vmacd_resource_failures_total"}
    assert fails == {(r, op) for r in ("httpd", "db") for op in RESOURCE_OPS}
    i.resources(["httpd"])
    i.track("eth0", True)
    i.track("ping", False)
    i.trackers_configured(["ping"])
    got = samples(m)
    assert {s.labels["resource"] for s in got if s.name.startswith("vmacd_resource")} == {"httpd"}
    assert {s.labels["tracker"] for s in got if s.name == "vmacd_track_up"} == {"ping"}
    assert set(OWN_FRAME_KINDS) == {s.labels["kind"] for s in got
                                    if s.name == "vmacd_own_frame_received_total"}


def test_remove_instance_drops_only_its_series():
    m = exercised()
    w = m.instance("wan", 7, "eth2")
    w.track("httpd", True)
    m.remove_instance("lan")
    m.remove_instance("never-existed")
    assert {s.labels["vrrp_instance"] for s in samples(m) if s.labels.get("vrrp_instance")} == {"wan"}
    assert m.instance("wan", 7, "eth2") is w             # same labels: same object
    w2 = m.instance("wan", 8, "eth2")                    # vrid changed on reload
    assert w2 is not w and w.removed
    assert {s.labels["vrid"] for s in samples(m) if s.labels.get("vrrp_instance") == "wan"} == {"8"}


def test_process_series_describe_this_process():
    fams = families(Metrics())
    v = {name: fams[name].samples[0].value for name in PROCESS}
    with open("/proc/self/status") as f:
        rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))
    assert abs(v["process_resident_memory_bytes"] - rss_kb * 1024) < 8 << 20
    assert v["process_virtual_memory_bytes"] >= v["process_resident_memory_bytes"]
    assert v["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 3 <= v["process_open_fds"] <= len(os.listdir("/proc/self/fd")) + 1
    cpu = time.process_time()
    assert cpu - 0.5 <= v["process_cpu_seconds_total"] <= cpu + 0.05
    # started before this test ran, and not before this interpreter did
    assert v["process_start_time_seconds"] <= time.time()
    assert time.time() - v["process_start_time_seconds"] < time.monotonic() + 5
    with open(os.devnull) as _a, open(os.devnull) as _b:
        more = families(Metrics())["process_open_fds"].samples[0].value
    assert more == v["process_open_fds"] + 2


def test_docs_list_every_series():
    text = DOCS.read_text()
    documented = set(re.findall(r"^\| `((?:vmacd|process)_[a-z_]+)`", text, re.MULTILINE))
    assert documented == {f.name for f in FAMILIES} | PROCESS


def test_daemon_modules_do_not_import_prometheus_client_or_http_stacks():
    """What importing the metrics adds to a fresh interpreter (prometheus_client would bring
    http.server, urllib, email and ssl: about 12 MB of RSS)."""
    code = ("import sys; before = set(sys.modules); import vmacd.control.metrics; "
            "print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "{'prometheus_client', 'http', 'email', 'ssl', 'urllib', 'asyncio'})))")
    p = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


# ---------------------------------------------------------------- render in steps

def big(n: int = 255) -> Metrics:
    m = Metrics(node="r1")
    for k in range(1, n + 1):
        i = m.instance(f"vr{k}", k, "eth1")
        i.transition("backup", "master", 1.7e9)
        i.interval(0.1)
        i.master_seen("192.0.2.1")
        i.checksum_variant("pseudo-header")
        i.track("eth0", True)
        i.resources(["httpd", "db"])
    return m


def without_process(page: bytes) -> bytes:
    return b"\n".join(line for line in page.split(b"\n") if b"process_" not in line)


def test_render_of_255_instances_runs_in_small_steps():
    m = big()
    whole = m.render()
    assert len(whole) > 1_000_000
    steps = []
    r = m.renderer()
    while True:
        t0 = time.perf_counter()
        done = r.step()
        steps.append(time.perf_counter() - t0)
        if done:
            break
    assert without_process(b"".join(r.chunks())) == without_process(whole)
    steps.sort()
    total = sum(steps)
    # several steps, each a small part of the whole (the step budget is 0.5 ms)
    assert len(steps) >= 5, steps
    assert steps[len(steps) // 2] < max(total / 3, 0.002), steps


def test_a_render_in_progress_leaves_out_removed_instances_and_waits_for_new_ones():
    m = big(100)
    r = m.renderer(chunk=0.0)                 # one instance per step
    r.step()
    m.remove_instance("vr50")
    m.instance("late", 1, "eth9")
    while not r.step():
        pass
    page = r.result().decode()
    assert 'vrrp_instance="vr49"' in page and 'vrrp_instance="vr50"' not in page
    assert 'vrrp_instance="late"' not in page and 'vrrp_instance="late"' in m.render().decode()
    assert r.steps > 100


# ---------------------------------------------------------------- hot path

def per_call(stmt: str, ns: dict) -> float:
    return min(timeit.repeat(stmt, globals=ns, number=100_000, repeat=7)) / 100_000


def test_hot_path_methods_are_plain_integer_updates():
    """Each per-packet method costs a few plain method calls: a lock, a dict built per call or a
    label lookup (what prometheus_client children do) would at least double these ratios."""

    class Noop:
        def call(self, _a=None) -> None:
            pass

    m = Metrics()
    ns = {"i": m.instance("lan", 51, "eth1"), "m": m, "n": Noop()}
    base = per_call("n.call(0.1)", ns)
    cost = {stmt: per_call(stmt, ns) for stmt in (
        "i.advert_sent()", "i.advert_received()", "i.dropped('ttl')",
        "i.checksum_variant('pseudo-header')", "i.interval(0.1)", "m.stall(0.0002)")}
    bound = {"i.advert_sent()": 4, "i.advert_received()": 4, "i.dropped('ttl')": 6,
             "i.checksum_variant('pseudo-header')": 6, "i.interval(0.1)": 12, "m.stall(0.0002)": 12}
    report = {k: f"{v * 1e9:.0f} ns ({v / base:.1f}x a no-op call of {base * 1e9:.0f} ns)"
              for k, v in cost.items()}
    for stmt, c in cost.items():
        assert c < bound[stmt] * base, report
        assert c < 2e-6, report
