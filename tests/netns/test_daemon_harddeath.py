"""Hard death (docs/architecture.md): SIGKILL of the master's vmacd (fault `kill`, the
guardian child survives). The guardian hands over make-before-break, so the client, probing the
VIP every 5 ms, loses no probe (0 of ~520 in each of 15 runs on a busy two-core machine: no
margin). The dead box must not fight the new master: its vMAC goes down and it sends no frame
from the vMAC once the new master's first advertisement is on the wire; a restarted vmacd cleans
or adopts the leftovers (one vmacd macvlan, no stray VIP) and rejoins as backup.
"""
from __future__ import annotations

import time

from daemon_util import (
    VMAC4,
    addresses,
    capture,
    failover_bound_s,
    fdb_ports,
    fleet,
    port,
    probe,
    sent_from,
    sleep_observing,
    up_links_with_mac,
    vmacd_links,
)
from vmaclab.faults import fault
from vmaclab.observe import adverts
from vmaclab.util import pid_alive, wait_until

__all__ = ["fleet"]


def test_sigkill_leaves_no_fighting_box_and_restart_adopts(fleet) -> None:
    lab = fleet.lab
    vip = lab.vip("lan")
    # preempt off: the restarted r1 (higher priority) must come back as backup and stay there
    r1 = fleet.start("r1", 200, preempt=False)
    wait_until(lambda: r1.state() == "master", 10.0, what="r1 master")
    r2 = fleet.start("r2", 100, preempt=False)
    wait_until(lambda: r2.state() == "backup", 10.0, what="r2 backup")
    guardian = r1.pids().get("guardian")
    assert guardian, f"no guardian child of vmacd on r1: {r1.pids()}"
    fleet.echo(["r1", "r2"])
    obs = capture(fleet)
    prober = probe(fleet)             # client traffic the dead box could still answer
    sleep_observing(1.0)

    done = fault(lab, r1, "kill")
    wait_until(lambda: not pid_alive(done["pids"][0]), 2.0, what="vmacd SIGKILLed")
    # the guardian takes the vMAC down the moment the daemon is gone, then removes its VIPs
    wait_until(lambda: not up_links_with_mac(lab, "r1", VMAC4), 1.0,
               what=f"r1's vMAC down after SIGKILL (up: {up_links_with_mac(lab, 'r1', VMAC4)})")
    wait_until(lambda: vip not in addresses(lab, "r1"), 1.0, what="the guardian removed the VIP")
    wait_until(lambda: r2.state() == "master", failover_bound_s(100), interval=0.005, what="r2 master")
    sleep_observing(1.5)
    summary = prober.stop()
    events = obs.stop()
    t_fault = int(done["t"] * 1e9)
    firsts = [e for e in adverts(events) if e["ifname"] == port(lab, "r2") and e["t_ns"] >= t_fault]
    assert firsts, "no advertisement from the new master"
    t_taken = firsts[0]["t_ns"]
    late = sent_from(events, port(lab, "r1"), VMAC4, after_ns=t_taken)
    print(f"\nkill: new master's first advert {(t_taken - t_fault) / 1e6:.0f} ms after SIGKILL; "
          f"client lost {summary.lost} of {summary.sent} probes (outage {summary.outage_ms} ms); "
          f"dead box frames after takeover: {len(late)}")
    assert sent_from(events, port(lab, "r1"), VMAC4, before_ns=t_fault)     # the capture works
    assert firsts[0]["src_mac"] == VMAC4 and firsts[0]["priority"] == 100, firsts[0]
    assert not late, f"the dead box sent from its vMAC after the takeover: {late[:3]}"
    assert summary.sent > 400, summary
    assert summary.lost == 0, f"the client lost {summary.lost} probes: {summary.loss_intervals}"
    assert fdb_ports(lab, VMAC4) == [port(lab, "r2")]
    assert not pid_alive(guardian), "the guardian outlived its job"

    # restart on the dead box: leftovers adopted or cleaned, rejoins as backup
    r1b = fleet.start("r1", 200, preempt=False)
    wait_until(lambda: r1b.state() == "backup", 5.0, what="restarted r1 backup")
    sleep_observing(1.0)          # several of r2's adverts: r1 must stay backup (no preempt)
    assert (r1b.state(), r2.state()) == ("backup", "master")
    mv = vmacd_links(lab, "r1")
    assert len(mv) == 1, [lk["ifname"] for lk in mv]
    assert mv[0].get("ifalias") == "vmacd:lan" and mv[0]["address"] == VMAC4
    assert "UP" not in mv[0]["flags"]
    assert vip not in addresses(lab, "r1")
    assert addresses(lab, "r2").count(vip) == 1
    assert time.monotonic() > done["t"]
