"""A real Prometheus scrapes four vmacd endpoints (two sites, two routers each, every one running
instance `lan` with VRID 51 on eth1) and evaluates the shipped alert rules: the dual master at one
site and the missing master at the other are told apart. Every query of the shipped dashboard
then runs against that Prometheus and returns data."""
from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from typing import Self

import pytest

from vmacd.control.metrics import Metrics
from vmacd.loop import Loop

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing (make deps installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """paris: r1 and r2 both master of lan (split brain); lyon: both backup (nobody serves)."""

    def __init__(self) -> None:
        self.loop = Loop()
        self.metrics: dict[tuple[str, str], Metrics] = {}
        self.ports: dict[tuple[str, str], int] = {}
        for site, state in (("paris", "master"), ("lyon", "backup")):
            for node in ("r1", "r2"):
                m = Metrics(node=f"{node}.{site}")
                i = m.instance("lan", 51, "eth1")
                i.priority(100, 100)
                i.transition("init", state, time.time())
                i.track("eth0", True)
                i.resources(["httpd"])
                i.master_seen("192.0.2.1")
                self.metrics[(site, node)] = m
                self.ports[(site, node)] = m.serve(self.loop, "127.0.0.1:0")[1]
        self.loop.on_late = self._stall
        self.loop.call_later(0.05, self._traffic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _stall(self, seconds: float) -> None:
        for m in self.metrics.values():
            m.stall(seconds)

    def _traffic(self) -> None:
        """Every 50 ms, on the loop: adverts and the rarer events, so every rate has data."""
        for m in self.metrics.values():
            i = m.instance("lan", 51, "eth1")
            i.advert_sent()
            i.advert_received()
            i.interval(0.1)
            i.checksum_variant("pseudo-header")
            i.dropped("ttl")
            i.garp_sent()
            i.late()
            i.priority_zero_sent()
            i.priority_zero_received()
            i.own_frame("reasserted")
            i.resource_failure("httpd", "monitor")
            i.dual_master()
        self.loop.call_later(0.05, self._traffic)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.loop.run_once(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for m in self.metrics.values():
            m.close()
        self.loop.close()


@contextlib.contextmanager
def prometheus(tmp_path: pathlib.Path, fleet: Fleet):
    port = free_port()
    sites = {}
    for (site, _node), p in fleet.ports.items():
        sites.setdefault(site, []).append(f"127.0.0.1:{p}")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "appliance" / "prometheus" / "vmacd.rules.yml")],
        "scrape_configs": [{"job_name": "vmacd", "static_configs": [
            {"targets": targets, "labels": {"site": site}} for site, targets in sites.items()]}],
    }
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(json.dumps(config))                  # JSON is YAML
    log = open(tmp_path / "prometheus.log", "w")        # noqa: SIM115 - closed below
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(base), 30, "prometheus ready", proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert proc is None or proc.poll() is None, f"prometheus exited ({proc.returncode})"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.25)


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", (promql, body)
    assert not body.get("warnings"), (promql, body["warnings"])
    return body["data"]["result"]


def alert_sites(base: str, name: str) -> set[str]:
    return {r["metric"].get("site", "") for r in query(base, f'ALERTS{{alertname="{name}"}}')}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """The fleet, scraped by Prometheus, once for this module's tests."""
    with Fleet() as fleet, prometheus(tmp_path_factory.mktemp("prometheus"), fleet) as base:
        yield base


def test_two_sites_reusing_a_vrid_and_a_name_are_told_apart(scraped):
    base = scraped
    wait_for(lambda: len(query(base, 'up{job="vmacd"} == 1')) == 4, 30, "4 targets up")
    state = query(base, 'vmacd_instance_state{job="vmacd", state="master"}')
    assert {(r["metric"]["site"], r["metric"]["vrrp_instance"], r["metric"]["vrid"]) for r in state} == \
        {("paris", "lan", "51"), ("lyon", "lan", "51")}
    assert all("exported_instance" not in r["metric"] for r in state)
    nodes = {r["metric"]["node"] for r in query(base, "vmacd_build_info")}
    assert nodes == {"r1.paris", "r2.paris", "r1.lyon", "r2.lyon"}
    # both alerts have a `for:`; pending is enough to see which site each one names
    wait_for(lambda: alert_sites(base, "VmacdDualMaster") and alert_sites(base, "VmacdNoMaster"),
             30, "the two alerts")
    assert alert_sites(base, "VmacdDualMaster") == {"paris"}
    assert alert_sites(base, "VmacdNoMaster") == {"lyon"}
    assert alert_sites(base, "VmacdSiteLabelMissing") == set()


def test_every_dashboard_query_returns_data(scraped):
    base = scraped
    dash = json.loads((ROOT / "appliance" / "grafana" / "vmacd.json").read_text())
    variables = [v["name"] for v in dash["templating"]["list"]]
    queries = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    queries += [(f"variable {v['name']}", v["definition"][len("label_values("):v["definition"].rindex(",")])
                for v in dash["templating"]["list"] if v["type"] == "query"]
    wait_for(lambda: len(query(base, 'up{job="vmacd"} == 1')) == 4, 30, "4 targets up")
    wait_for(lambda: query(base, 'count_over_time(up{job="vmacd"}[1m]) >= 4'), 30, "4 scrapes each")
    empty = []
    for title, expr in queries:
        promql = expr.replace("$__rate_interval", "10s")
        for name in variables:
            promql = promql.replace(f"${name}", ".*")
        if not query(base, promql):
            empty.append((title, promql))
    assert empty == []
