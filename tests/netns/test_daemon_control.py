"""vmacd's control plane against a running pair: the real `vmacctl` command
run with `ip netns exec` (status, history, maintenance, reload), malformed requests on the raw
socket, and the Prometheus endpoint scraped with curl inside the router's namespace.
"""
from __future__ import annotations

import json
import re
import socket
import time

from daemon_util import (
    VMAC4,
    capture,
    failover_bound_s,
    fleet,
    metric_value,
    metrics_text,
    port,
    probe,
    sent_from,
    sleep_observing,
    up_links_with_mac,
    vip_holders,
    vmacctl,
)
from vmaclab.util import wait_until

__all__ = ["fleet"]


def _json(cp) -> dict:
    return json.loads(cp.stdout)


def test_status_and_history_json(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    st = _json(vmacctl(lab, "r1", rs["r1"], "status", "--json"))
    inst = st["instances"][0]
    assert st["ok"] and st["node"] == "r1" and st["pid"] == rs["r1"].proc.pid
    assert (inst["name"], inst["vrid"], inst["state"]) == ("lan", 51, "master")
    assert (inst["priority"], inst["effective_priority"], inst["vmac"]) == (200, 200, VMAC4)
    assert inst["vips"] == [f"{lab.vip('lan')}/24"]
    # what status says is what the kernel holds
    assert inst["vmac_ifname"] in up_links_with_mac(lab, "r1", VMAC4)
    b = _json(vmacctl(lab, "r2", rs["r2"], "status", "--json"))["instances"][0]
    assert b["state"] == "backup" and b["master"]["src"] == lab.addr("r1", "lan")
    assert b["master"]["priority"] == 200 and b["timers"]["master_down_interval_ms"] > 300
    human = vmacctl(lab, "r1", rs["r1"], "status").stdout
    assert "lan" in human and "master" in human

    hist = _json(vmacctl(lab, "r1", rs["r1"], "history", "--json"))["history"]
    assert [(h["from"], h["to"]) for h in hist] == [("init", "backup"), ("backup", "master")]
    assert all(h["instance"] == "lan" and h["reason"] and h["time"] > 1.6e9 for h in hist)
    assert hist[0]["time"] <= hist[1]["time"]


def test_maintenance_hands_over_without_loss_and_returns(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    fleet.echo(["r1", "r2"])
    obs = capture(fleet)
    prober = probe(fleet)
    sleep_observing(0.5)
    reply = _json(vmacctl(lab, "r1", r1, "maintenance", "lan", "on", "--json"))
    assert reply["ok"] and reply["maintenance"] is True
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), failover_bound_s(100),
               what="handover on maintenance")
    wait_until(lambda: vip_holders(lab, lab.vip("lan")) == ["r2"]
               and not up_links_with_mac(lab, "r1", VMAC4), 2.0, what="r1 lets go")
    t_released = time.monotonic_ns()
    sleep_observing(1.5)              # drained: r1 stays backup though it has the higher priority
    assert (r1.state(), r2.state()) == ("backup", "master")
    assert _json(vmacctl(lab, "r1", r1, "status", "--json"))["instances"][0]["maintenance"] is True
    summary = prober.stop()
    events = obs.stop()
    print(f"\nmaintenance on: client lost {summary.lost} of {summary.sent} probes at 5 ms")
    assert summary.lost == 0, summary
    assert summary.last_responder == "r2"
    assert not sent_from(events, port(lab, "r1"), VMAC4, after_ns=t_released)

    vmacctl(lab, "r1", r1, "maintenance", "lan", "off")
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), failover_bound_s(200),
               what="r1 back after maintenance off")
    wait_until(lambda: vip_holders(lab, lab.vip("lan")) == ["r1"], 2.0, what="VIP back on r1")


def test_persistent_maintenance_outlives_a_restart_and_leaves_nothing_when_off(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    state = r1.dir / "state" / "maintenance.json"
    # a drain that was never persisted writes nothing when it ends
    vmacctl(lab, "r1", r1, "maintenance", "lan", "on")
    vmacctl(lab, "r1", r1, "maintenance", "lan", "off")
    assert not state.exists()
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), failover_bound_s(200),
               what="r1 back after a plain drain")

    reply = _json(vmacctl(lab, "r1", r1, "maintenance", "lan", "on", "--persist", "--json"))
    assert reply["ok"] and reply["persistent"] is True
    assert json.loads(state.read_text()) == {"instances": {"lan": True}}
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), failover_bound_s(100),
               what="handover on maintenance")
    r1.stop()
    r1.start()                        # the higher priority comes back drained: it claims nothing
    sleep_observing(1.0)
    assert (r1.state(), r2.state()) == ("backup", "master")
    assert _json(vmacctl(lab, "r1", r1, "status", "--json"))["instances"][0]["maintenance"] is True

    reply = _json(vmacctl(lab, "r1", r1, "maintenance", "lan", "off", "--json"))
    assert reply["ok"] and reply["persistent"] is False
    assert json.loads(state.read_text()) == {"instances": {}}
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), failover_bound_s(200),
               what="r1 back after maintenance off")


def test_reload_applies_refuses_broken_and_does_not_flap(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]

    def history(r) -> list:
        # times are re-derived from the monotonic clock on each call: compare to the 10 ms
        return [(h["from"], h["to"], h["reason"], round(h["time"], 2))
                for h in _json(vmacctl(lab, r.node, r, "history", "--json"))["history"]]

    # the same file again: nothing changes, the running instance does not flap
    h1 = history(r1)
    rep = _json(vmacctl(lab, "r1", r1, "reload", "--json"))
    assert rep["ok"] and rep["unchanged"] == ["lan"] and rep["changed"] == []
    sleep_observing(0.5)
    assert history(r1) == h1 and r1.state() == "master"

    # a changed priority is applied: r2 at 250 preempts r1
    text = r2.conf_path.read_text()
    assert "priority = 100" in text
    r2.conf_path.write_text(text.replace("priority = 100", "priority = 250"))
    rep = _json(vmacctl(lab, "r2", r2, "reload", "--json"))
    assert rep["ok"] and rep["changed"] == ["lan"], rep
    # the reload has been applied when vmacctl answers: r2 preempts within its own bound
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), failover_bound_s(250),
               what="r2 master at priority 250")
    assert _json(vmacctl(lab, "r2", r2, "status", "--json"))["instances"][0]["priority"] == 250
    wait_until(lambda: vip_holders(lab, lab.vip("lan")) == ["r2"], 2.0, what="VIP on r2")

    # a broken file is refused with the error; the daemon runs on, unchanged, without a flap
    h1, h2 = history(r1), history(r2)
    good = r1.conf_path.read_text()
    r1.conf_path.write_text(good.replace("vrid = 51", "vrid = 300"))
    cp = vmacctl(lab, "r1", r1, "reload", check=False)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert re.search(r"vrid.*300", cp.stdout + cp.stderr), cp.stdout + cp.stderr
    r2.conf_path.write_text("[[instance]\nname = \n")            # not even TOML
    cp = vmacctl(lab, "r2", r2, "reload", "--json", check=False)
    assert cp.returncode == 1 and _json(cp)["ok"] is False and _json(cp)["error"]
    sleep_observing(0.5)
    assert r1.proc.poll() is None and r2.proc.poll() is None
    assert (r1.state(), r2.state()) == ("backup", "master")
    assert history(r1) == h1 and history(r2) == h2
    assert _json(vmacctl(lab, "r2", r2, "status", "--json"))["instances"][0]["priority"] == 250


BAD_LINES = [
    b"\xff\xfe\x00\x01garbage\n",             # not UTF-8
    b"this is not json\n",
    b"\n",                                     # empty
    b"[1, 2, 3]\n",                            # JSON, not an object
    b'{"cmd": "selfdestruct"}\n',              # unknown command
    b'{"nocmd": 1}\n',
    b'{"cmd": "maintenance", "instance": "lan"}\n',                # missing field
    b'{"cmd": "maintenance", "instance": "nope", "on": true}\n',   # unknown instance
    b'{"cmd": "maintenance", "instance": "lan", "on": "yes"}\n',   # wrong type
    b"{" * 5000 + b"\n",                       # nesting bomb
]


def _ask_raw(path: str, payload: bytes, lines: int) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(payload)
        buf = b""
        while buf.count(b"\n") < lines:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(x) for x in buf.splitlines()]


def test_malformed_requests_get_errors_and_metrics_are_served(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1 = rs["r1"]
    path = str(r1.socket_path)
    for line in BAD_LINES:                          # one connection each
        (reply,) = _ask_raw(path, line, 1)
        assert reply["ok"] is False and reply["error"], (line[:40], reply)
    # all in one connection, then a good one: one reply per line, in order, connection kept
    replies = _ask_raw(path, b"".join(BAD_LINES) + b'{"cmd": "status"}\n', len(BAD_LINES) + 1)
    assert [r["ok"] for r in replies] == [False] * len(BAD_LINES) + [True]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:   # garbage, then hang up
        s.connect(path)
        s.sendall(b"\x00\x01\x02 half a line")
    assert r1.proc.poll() is None and r1.state() == "master"
    assert r1.status()["ok"] is True

    text = metrics_text(lab, "r1")
    lbl = 'vrrp_instance="lan"'
    for name in ("vmacd_instance_state", "vmacd_instance_priority",
                 "vmacd_instance_effective_priority", "vmacd_transitions_total",
                 "vmacd_last_transition_timestamp_seconds", "vmacd_adverts_sent_total",
                 "vmacd_adverts_received_total", "vmacd_packets_dropped_total",
                 "vmacd_garp_sent_total", "vmacd_dual_master_total"):
        assert re.search(rf"^{name}\{{[^}}]*{lbl}", text, re.MULTILINE), f"{name} missing"
    for name in ("vmacd_build_info", "vmacd_advert_interval_seconds", "vmacd_adverts_late_total",
                 "vmacd_master_seen_info", "vmacd_checksum_variant_total"):
        assert f"# TYPE {name}" in text or f"\n{name}" in text, f"{name} missing"
    assert metric_value(text, "vmacd_instance_state", vrrp_instance="lan", state="master") == 1
    assert metric_value(text, "vmacd_instance_state", vrrp_instance="lan", state="backup") == 0
    assert metric_value(text, "vmacd_instance_priority", vrrp_instance="lan", vrid="51",
                        interface="eth0") == 200
    assert metric_value(text, "vmacd_adverts_sent_total", vrrp_instance="lan") >= 1
    wait_until(lambda: metric_value(metrics_text(lab, "r1"), "vmacd_adverts_sent_total",
                                    vrrp_instance="lan") >= 10, 5.0, what="adverts_sent_total counts")
    assert metric_value(text, "vmacd_garp_sent_total", vrrp_instance="lan") >= 1
    assert metric_value(text, "vmacd_transitions_total", vrrp_instance="lan", to="master") == 1
    for reason in ("ttl", "checksum", "vrid", "addresses", "interval"):
        assert re.search(rf'^vmacd_packets_dropped_total\{{[^}}]*reason="{reason}"', text, re.MULTILINE), \
            f"dropped reason {reason} not exposed"
    def r2_counted() -> str | None:
        t = metrics_text(lab, "r2")
        return t if metric_value(t, "vmacd_adverts_received_total", vrrp_instance="lan") >= 5 else None
    t2 = wait_until(r2_counted, 5.0, what="adverts_received_total counts on r2")
    assert metric_value(t2, "vmacd_instance_state", vrrp_instance="lan", state="backup") == 1
    assert metric_value(t2, "vmacd_master_seen_info", vrrp_instance="lan",
                        master=lab.addr("r1", "lan")) == 1
