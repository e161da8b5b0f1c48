"""vmacd pair (VRRPv3, 100 ms, 200/100): the master fails on each of the lab's faults
(netns-lab/README.md) and the backup takes over; what the client, the bridge and the old master
see afterwards.

Each run: election, echo servers on both routers, a capture of every bridge port, the client
probing the VIP every 5 ms; 1.5 s of steady state (r2 is backup: it must send nothing from the
vMAC), the fault, the new master, 1 s of tail.
"""
from __future__ import annotations

import time

import pytest
from daemon_util import (
    VMAC4,
    addresses,
    arp_requests_for,
    capture,
    failover_bound_s,
    fdb_ports,
    fleet,
    neigh,
    observe_guardians,
    port,
    probe,
    sent_from,
    sleep_observing,
    up_links_with_mac,
    vip_holders,
    vmacd_links,
)
from vmaclab.faults import fault
from vmaclab.util import pid_alive, wait_until

__all__ = ["fleet"]

EVENTS = ["crash", "kill", "term", "linkdown", "service"]


@pytest.mark.parametrize("event", EVENTS)
def test_master_fails_over(fleet, event: str) -> None:
    lab = fleet.lab
    vip = lab.vip("lan")
    track = {}
    if event == "service":      # the Heartbeat case: the box stays up, the service dies
        for n in ("r1", "r2"):
            marker = lab.workdir(n) / "service-ok"
            marker.touch()
            track[n] = {"track": {"file": str(marker), "weight": 0, "interval_ms": 100}}
    r1 = fleet.start("r1", 200, **track.get("r1", {}))
    r2 = fleet.start("r2", 100, **track.get("r2", {}))
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 10.0, what="election")
    fleet.echo(["r1", "r2"])
    obs = capture(fleet)
    prober = probe(fleet)
    # steady state (the client resolves the VIP, r2 is backup); meanwhile the lab must name each
    # daemon's guardian right (track scripts are children of vmacd too), or `crash` spares it
    assert not observe_guardians([r1, r2], 1.5)
    guardian = r1.pids()["guardian"]
    before = neigh(lab, "c1", vip)
    assert before and before.get("lladdr") == VMAC4, before

    done = fault(lab, r1, event)
    t_fault = int(done["t"] * 1e9)
    bound = failover_bound_s(100)
    wait_until(lambda: r2.state() == "master", bound + 1, interval=0.005,
               what=f"r2 master after {event}")
    took = time.monotonic() - done["t"]
    old_lets_go = event in ("term", "linkdown", "service")      # a live daemon on the old master
    if old_lets_go:
        wait_until(lambda: not up_links_with_mac(lab, "r1", VMAC4)
                   and "r1" not in vip_holders(lab, vip), 3.0, what="old master to let go")
    t_released = time.monotonic_ns()
    sleep_observing(1.0)
    summary = prober.stop()
    events = obs.stop()
    print(f"\n{event}: r2 master {took * 1000:.0f} ms after the fault; client lost "
          f"{summary.lost} probes of {summary.sent} (outage {summary.outage_ms:.1f} ms)")

    assert took < bound, took
    # the capture works: the old master's adverts from the vMAC are in it before the fault
    assert sent_from(events, port(lab, "r1"), VMAC4, before_ns=t_fault)
    # a backup never sends a frame with the vMAC as source
    assert not sent_from(events, port(lab, "r2"), VMAC4, before_ns=t_fault)
    # the new master holds the VIP on an UP vMAC, and the bridge learned the vMAC on its port
    assert "r2" in vip_holders(lab, vip)
    assert up_links_with_mac(lab, "r2", VMAC4)
    assert sent_from(events, port(lab, "r2"), VMAC4, after_ns=t_fault)
    wait_until(lambda: fdb_ports(lab, VMAC4) == [port(lab, "r2")], 2.0,
               what=f"FDB: vMAC on {port(lab, 'r2')} (have {fdb_ports(lab, VMAC4)})")
    # the client kept its ARP entry (the vMAC did not change) and never asked again
    after = neigh(lab, "c1", vip)
    assert after and after.get("lladdr") == VMAC4, after
    assert not arp_requests_for(events, port(lab, "c1"), vip, t_fault)
    assert summary.received > 0 and summary.last_responder == "r2"

    if old_lets_go:
        assert vip_holders(lab, vip) == ["r2"]
        assert not up_links_with_mac(lab, "r1", VMAC4)
        assert not sent_from(events, port(lab, "r1"), VMAC4, after_ns=t_released)
    if event == "service":
        assert r1.state() == "fault"
    if event == "term":
        # SIGTERM: the daemon exits and leaves no vMAC and no VIP behind; make-before-break
        # (the old master serves until it hears the new one) loses no probe at 5 ms
        wait_until(lambda: r1.proc.poll() is not None, 5.0, what="vmacd to exit")
        assert r1.proc.returncode == 0
        assert not vmacd_links(lab, "r1")
        assert vip not in addresses(lab, "r1")
        assert summary.lost == 0, summary
    if event == "crash":          # the box is gone: daemon and guardian alike
        assert not pid_alive(r1.proc.pid) and not pid_alive(guardian)
    if event == "kill":           # the guardian outlives the daemon (the hard-death test goes on)
        assert not pid_alive(r1.proc.pid)
