"""A keepalived pair (VRRPv3, 100 ms) elects the higher priority and fails over on each fault."""
from __future__ import annotations

import signal
import time

import pytest
from failover_bound import failover_bound_s
from vmaclab.faults import fault
from vmaclab.util import kill, run, wait_until


def _vip_holder(lab) -> list[str]:
    return [n for n in lab.topo.routers() if lab.vip("lan") in lab.run(n, ["ip", "-4", "-br", "addr"]).stdout]


def test_elects_higher_priority_with_vmac(lab, routers) -> None:
    lb = lab("pair")
    r1, r2 = routers(lb, "keepalived", priorities=(100, 200))
    assert (r1.state(), r2.state()) == ("backup", "master")
    assert _vip_holder(lb) == ["r2"]
    cp = lb.run("c1", ["arping", "-c1", "-w2", "-I", "eth0", lb.vip("lan")])
    assert "00:00:5E:00:01:33" in cp.stdout.upper()   # the VIP answers from the vMAC of VRID 51


@pytest.mark.parametrize("event", ["crash", "kill", "term", "linkdown"])
def test_fails_over(lab, routers, event: str) -> None:
    lb = lab("pair")
    r1, r2 = routers(lb, "keepalived")
    done = fault(lb, r1, event)
    bound = failover_bound_s(100)          # r2, the backup, runs at priority 100, 100 ms adverts
    wait_until(lambda: r2.state() == "master", bound, what=f"r2 master after {event}")
    took = time.monotonic() - done["t"]
    assert took < bound
    if event == "term":
        # priority 0: the backup takes over after Skew_Time, well before Master_Down_Interval
        assert took < 0.3, took
        wait_until(lambda: not r1.pids(), 5.0, what="keepalived to exit")
    if event in ("crash", "kill"):
        assert not r1.pids()
    if event == "kill":
        # the daemon-less old master keeps the vMAC interface and the VIP it configured
        assert "r1" in _vip_holder(lb)
    if event == "crash":
        port = run(["ip", "-n", lb.bridge_ns("lan"), "-br", "link", "show", lb.bridge_port("r1", "lan")])
        assert "DOWN" in port.stdout


def test_linkup_preempts_back(lab, routers) -> None:
    lb = lab("pair")
    r1, r2 = routers(lb, "keepalived")
    fault(lb, r1, "linkdown")
    wait_until(lambda: r2.state() == "master" and r1.state() == "fault", 3.0, what="failover")
    fault(lb, r1, "linkup")
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5.0, what="preempt back")


def test_nopreempt_and_vrrpv2_without_vmac(lab, routers) -> None:
    lb = lab("pair")
    r1, r2 = routers(lb, "keepalived", advert_ms=1000, version=2, vmac=False, preempt=False,
                     elect=False)
    wait_until(lambda: "master" in (r1.state(), r2.state()), 6.0, what="a v2 master")
    holder = _vip_holder(lb)
    assert len(holder) == 1
    cp = lb.run("c1", ["arping", "-c1", "-w2", "-I", "eth0", lb.vip("lan")])
    assert "00:00:5E:00:01" not in cp.stdout.upper()   # parent MAC, no vMAC


def test_service_fault_tracks_marker_file(lab, routers) -> None:
    lb = lab("pair")
    markers = {n: lb.workdir(n) / "service-ok" for n in lb.topo.routers()}
    for m in markers.values():
        m.touch()
    from vmaclab import impls
    rs = []
    for node, prio in (("r1", 200), ("r2", 100)):
        r = impls.get("keepalived")().configure(lb, node, "lan", 51, lb.vip("lan"), prio, 100,
                                                track={"file": str(markers[node]), "weight": 0})
        r.start()
        rs.append(r)
    try:
        wait_until(lambda: [r.state() for r in rs] == ["master", "backup"], 10.0, what="election")
        fault(lb, rs[0], "service")
        wait_until(lambda: rs[0].state() == "fault" and rs[1].state() == "master", 5.0,
                   what="failover on service")
        fault(lb, rs[0], "service_up")
        wait_until(lambda: rs[0].state() == "master", 5.0, what="back after service returns")
    finally:
        for r in rs:
            r.stop()


def test_state_reports_survive_a_reload(lab, routers) -> None:
    """keepalived 2.2.7 drops its notify_fifo on SIGHUP unless script_user precedes it: the lab
    must still see the state a reload leads to (here: priority lowered below the backup's)."""
    lb = lab("pair")
    r1, r2 = routers(lb, "keepalived", priorities=(200, 150))
    r1.cfg.priority = 100
    r1.write_config()
    for pid in r1.term_pids():
        kill(pid, signal.SIGHUP)
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), 3.0,
               what="r1 reports backup after its reload")
    assert "Entering BACKUP STATE" in r1.log_tail(10)
