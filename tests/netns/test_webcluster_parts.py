"""The web cluster's parts: the seed mapped to a lab ha.d, the import run inside a node, lighttpd's
resource commands against a real server, the HTTP prober's reading of requests, and the scenario
runner's record (JSON + PNG)."""
from __future__ import annotations

import json
import signal
import time
import tomllib
from pathlib import Path

import pytest
from vmaclab import cli, hadir, httpprobe
from vmaclab.cluster import NODES, Cluster, Options
from vmaclab.httpprobe import Request, window
from vmaclab.lab import lab_namespaces
from vmaclab.util import wait_until
from vmaclab.webcluster import WebScenario, render
from vmaclab.webcluster import run as run_scenario
from vmaclab.websvc import WebServer

pytestmark = pytest.mark.timeout(180)
MS = 1_000_000


def _seed(name: str) -> str:
    return (hadir.SEED_DIR / name).read_text()


def _hamap(keepalive_ms: int = 2000, initdead_ms: int | None = None) -> hadir.HaMap:
    return hadir.HaMap(nodes={"linux-ha-a": "a", "linux-ha-b": "b"},
                       link_addrs={"a": "198.51.100.11", "b": "198.51.100.12"},
                       vips={"10.1.1.1": "192.0.2.254"}, keepalive_ms=keepalive_ms,
                       initdead_ms=initdead_ms)


def test_lab_hadir_is_the_seed_with_only_names_and_addresses_mapped():
    want = (_seed("ha.cf").replace("ucast eth1 192.168.100.1",
                                   "ucast eth1 198.51.100.11\nucast eth1 198.51.100.12")
            .replace("linux-ha-a", "a").replace("linux-ha-b", "b"))
    assert hadir.map_hacf(_seed("ha.cf"), _hamap()) == want
    assert hadir.map_haresources(_seed("haresources"), _hamap()) == "a 192.0.2.254 httpd::start\n"


def test_lab_hadir_scales_the_seed_times_with_keepalive():
    out = hadir.map_hacf(_seed("ha.cf"), _hamap(200)).splitlines()
    assert out[1:5] == ["keepalive 200ms", "deadtime 3", "warntime 1", "initdead 12"]
    out = hadir.map_hacf(_seed("ha.cf"), _hamap(150, initdead_ms=1500)).splitlines()
    assert out[1:5] == ["keepalive 150ms", "deadtime 2250ms", "warntime 750ms", "initdead 1500ms"]


def _req(seq: int, ok: bool, node: str | None = None, error: str | None = None) -> Request:
    """Request *seq* starts at seq * 25 ms and takes 2 ms (a failure 300 ms: a timeout)."""
    t = seq * 25 * MS
    return Request(seq, t, t + (2 if ok else 300) * MS, ok, error, 200 if ok else None, node)


def test_http_window_outage_failed_and_moves():
    reqs = [_req(i, True, "a") for i in range(10)]
    reqs += [_req(i, False, error="timeout") for i in range(10, 14)]
    reqs += [_req(14, False, error="refused")] + [_req(i, True, "b") for i in range(15, 30)]
    w = window(reqs, 240 * MS, 10**12)
    assert (w["served_before"], w["served_after"], w["failed"]) == ("a", "b", 5)
    # from the start of request 10 (250 ms) to the end of request 15 (377 ms)
    assert w["outages"] == [{"start_ms": 10.0, "end_ms": 137.0, "ms": 127.0, "failed": 5,
                             "errors": {"timeout": 4, "refused": 1}}]
    assert w["moves"] == [{"t_ms": 137.0, "from": "a", "to": "b"}] and not w["open_outage"]


def test_http_window_open_outage_and_no_failure():
    reqs = [_req(i, True, "a") for i in range(4)] + [_req(i, False, error="reset") for i in (4, 5)]
    w = window(reqs, 0, 10**12)
    assert w["open_outage"] and w["outage_ms"] == 0.0 and w["outages"][0]["ms"] is None
    w = window([_req(i, True, "a") for i in range(8)], 50 * MS, 10**12)
    assert (w["failed"], w["outages"], w["moves"], w["served_after"]) == (0, [], [], "a")


def test_parse_response_names_the_node_from_page_or_server_header():
    ok = b"HTTP/1.0 200 OK\r\nServer: lighttpd node b\r\n\r\nthis is node a\n"
    assert httpprobe.parse_response(ok) == (200, "a", None)
    shared = b"HTTP/1.0 200 OK\r\nServer: lighttpd node b\r\n\r\nthe shared docroot\n"
    assert httpprobe.parse_response(shared) == (200, "b", None)
    assert httpprobe.parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n") == (404, None, "http 404")
    assert httpprobe.parse_response(b"") == (None, None, "closed")


def test_lighttpd_resource_commands_on_a_real_server(lab):
    lb = lab("webcluster")
    web = WebServer(lb, "a")
    run = lambda argv: lb.run("a", argv, check=False).returncode
    assert run(web.stop_argv) == 0 and run(web.monitor_argv) != 0    # nothing runs: stop is ok
    assert run(web.start_argv) == 0 and run(web.monitor_argv) == 0
    status, node, body = httpprobe.fetch(lb.ns("c1"), lb.addr("a", "svc"))
    assert (status, node, body) == (200, "a", b"this is node a\n")
    pid = web.pid()
    assert run(web.start_argv) != 0                                   # port 80 is taken ...
    assert not web.pidfile.exists() and web.pid() == pid              # ... and its pid file gone
    web.kill(signal.SIGSTOP)                                          # hung: not answering
    t = time.monotonic()
    assert run(web.monitor_argv) != 0 and time.monotonic() - t < 5
    web.kill(signal.SIGCONT)
    assert run(web.monitor_argv) == 0
    web.kill(signal.SIGKILL)
    wait_until(lambda: web.pid() is None, 5, what="lighttpd gone")
    assert run(web.monitor_argv) != 0                                 # dead
    assert run(web.start_argv) == 0 and web.pid() not in (None, pid)  # a stale pid file is no bar
    assert run(web.stop_argv) == 0 and web.pid() is None and not web.pidfile.exists()


def test_import_inside_each_node_gives_the_vip_interface_and_lighttpd(tmp_path):
    c = Cluster(Options(keepalive_ms=200, initdead_ms=1000))
    c.lab.up()
    try:
        for node in NODES:
            c.configure(node)                                 # includes `vmacd check` (preflight)
        docs = {n: tomllib.loads(c.nodes[n].conf_path.read_text()) for n in NODES}
        hacf = (c.lab.workdir("a") / "ha.d" / "ha.cf").read_text()
    finally:
        c.lab.down()
    assert not lab_namespaces(c.lab.prefix)
    assert "ucast eth1 198.51.100.11" in hacf and "keepalive 200ms" in hacf
    for node, doc in docs.items():
        (inst,) = doc["instance"]
        assert (inst["interface"], inst["vrid"], inst["virtual_ips"]) == ("eth0", 1, ["192.0.2.254/24"])
        assert inst["priority"] == (150 if node == "a" else 100)
        assert (inst["advert_interval"], inst["preempt"], inst["auth"]) == ("200ms", True, "heartbeat")
        assert inst["startup_delay"] == "1s" and "unicast_peers" not in inst
        assert doc["auth"]["heartbeat"]["type"] == "hmac-sha256"
        res = doc["resource"]["httpd"]
        assert res["start"] == ["/usr/sbin/lighttpd", "-f", str(c.lab.rundir / node / "lighttpd.conf")]
        assert res["monitor"][1:] == ["status"] and res["monitor_fall"] == 1
    assert docs["a"]["auth"] == docs["b"]["auth"]


def test_webcluster_scenario_writes_record_and_timeline(tmp_path: Path):
    sc = WebScenario(scenario="webcluster", initdead_ms=1000, hold_ms=500,
                     events=["cut", "reconnect"])
    rec = run_scenario(sc, tmp_path)
    assert [e["name"] for e in rec["events"]] == ["cut", "reconnect"]
    assert all(e["settled"] for e in rec["events"]), rec["events"]
    cut = rec["events"][0]["vips"]["ha1"]
    assert cut["http"]["served_before"] == "a" and cut["http"]["served_after"] == "b"
    assert cut["http"]["failed"] > 0 and cut["ping"]["lost"] > 0
    assert rec["neigh_macs"] == {"ha1": ["00:00:5e:00:01:01"]}
    saved = json.loads(Path(rec["json"]).read_text())
    assert saved["events"][0]["vips"]["ha1"]["http"]["failed"] == cut["http"]["failed"]
    assert Path(rec["png"]).read_bytes()[:4] == b"\x89PNG"
    table = render(rec)
    assert "cut" in table and "a -> b" in table and "00:00:5e:00:01:01" in table


def test_loadshare_demo_from_the_command_line(tmp_path: Path, capsys):
    assert cli.main(["demo", "--scenario", "loadshare", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    crash = [ln.split() for ln in out.splitlines() if ln.startswith("crash ")]
    assert [row[1] for row in crash] == ["192.0.2.254", "192.0.2.253"]
    assert crash[1][2:6] == ["0", "ms", "0", "0"]                  # b's address: nothing lost
    assert (tmp_path / "loadshare-200ms.json").exists() and (tmp_path / "loadshare-200ms.png").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--event", "cut,bogus"], "events of webcluster are cut, reconnect"),
    (["--advert", "fast"], "advert_ms: not a duration such as 200ms or 2s, got 'fast'"),
    (["--impl", "keepalived"], "webcluster runs vmacd only, got --impl keepalived"),
])
def test_web_scenario_bad_input_is_named(argv, message, capsys):
    assert cli.main(["demo", "--scenario", "webcluster", *argv]) == 2
    assert message in capsys.readouterr().err
