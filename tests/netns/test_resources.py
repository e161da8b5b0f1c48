"""Resources (Heartbeat haresources): stopped once at start-up (a previous run may have left them
running), started in order on becoming master, stopped in reverse order on leaving; a resource
that cannot start hands the VIP over and keeps the node out of mastership until its
failure_timeout passes or `vmacctl clear`."""
from __future__ import annotations

from vmaclab import impls
from vmaclab.faults import fault
from vmaclab.util import wait_until


def _log_cmd(path, word):
    return ["/bin/sh", "-c", f"echo {word} >> {path}"]


def test_resources_start_in_order_and_stop_in_reverse(lab, tmp_path):
    lb = lab("pair")
    log = tmp_path / "r1.log"
    res = {n: {"start": _log_cmd(log, f"start-{n}"), "stop": _log_cmd(log, f"stop-{n}")}
           for n in ("ip", "fs", "web")}
    r1 = impls.get("vmacd")().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100, resources=res)
    r2 = impls.get("vmacd")().configure(lb, "r2", "lan", 51, lb.vip("lan"), 100, 100)
    r1.start()
    r2.start()
    wait_until(lambda: r1.state() == "master" and log.exists()
               and len(log.read_text().split()) == 6, 5, what="resources started")
    fault(lb, r1, "term")
    wait_until(lambda: r2.state() == "master", 5, what="takeover")
    wait_until(lambda: len(log.read_text().split()) == 9, 5, what="resources stopped")
    assert log.read_text().split() == ["stop-web", "stop-fs", "stop-ip",       # start-up clean
                                       "start-ip", "start-fs", "start-web",
                                       "stop-web", "stop-fs", "stop-ip"]


def test_failed_resource_start_hands_over_and_clear_retries(lab, tmp_path):
    lb = lab("pair")
    flag = tmp_path / "may-start"
    res = {"svc": {"start": ["/usr/bin/test", "-e", str(flag)], "stop": ["/bin/true"],
                   "failure_timeout": "0s"}}
    r1 = impls.get("vmacd")().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100, resources=res)
    r2 = impls.get("vmacd")().configure(lb, "r2", "lan", 51, lb.vip("lan"), 100, 100)
    r1.start()
    r2.start()
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), 5, what="r1 gives up")
    status = r1.status()["instances"][0]
    assert status["failed"]["svc"]["op"] == "start" and status["failed"]["svc"]["until"] is None
    out = lb.run("r1", ["ip", "-4", "-br", "addr"]).stdout
    assert lb.vip("lan") not in out
    stays = [r1.state() for _ in range(5)]          # held out: priority 200 does not preempt
    assert stays == ["backup"] * 5
    flag.touch()
    reply = r1.control({"cmd": "clear", "instance": "lan"})
    assert reply["ok"] and reply["cleared"] == ["svc"], reply
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5, what="r1 back")
