"""vmacd + keepalived 2.2.7 in one VRID: VRRPv3 over IPv4 at 100 ms, vMAC on both.

Judged by the daemons' own states (vmacd control socket, keepalived notify fifo), the client's ARP
view of the VIP, the LAN bridge's FDB and vmacd's metrics; keepalived's refusals by its log lines.
"""
from __future__ import annotations

import time

import pytest
from failover_bound import failover_bound_s
from interop_util import (
    VRID,
    arping_mac,
    elect,
    keepalived_knows,
    log_lines,
    metric,
    metrics,
    row,
    stays,
)
from vmaclab.faults import fault
from vmaclab.util import run, wait_until

VMAC = f"00:00:5e:00:01:{VRID:02x}"


def fdb_port(lb, mac: str) -> list[str]:
    """Bridge ports (on the LAN bridge) the FDB has learned *mac* on."""
    out = run(["bridge", "-n", lb.bridge_ns("lan"), "fdb", "show", "br", lb.bridge("lan")]).stdout
    return [line.split()[2] for line in out.splitlines() if line.startswith(mac) and " dev " in line]


def vip_holders(lb) -> list[str]:
    """Routers whose namespace holds the VIP on any interface."""
    return [n for n in lb.topo.routers()
            if f"{lb.vip('lan')}/" in lb.run(n, ["ip", "-4", "-o", "addr"]).stdout]


@pytest.mark.rfc("9568-6.4.3-2", "holds")
@pytest.mark.parametrize("event", ["crash", "term"])
@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("keepalived", 4, "multicast", "v3",
                              "defaults on both (vMAC, 100 ms, pseudo-header checksum)", o, 1,
                              "states; arping of the VIP (vMAC) and the bridge FDB on the master's "
                              "port; each accepts the other's checksum; `crash` / `term` of the "
                              "master: the backup takes over (term: < 0.3 s)"))
    for h, o in (("vmacd", "vmacd higher"), ("keepalived", "peer higher"))])
def test_v3_election_and_failover(lab, routers, higher: str, event: str) -> None:
    """The higher priority wins whoever runs it; the other takes over on crash / term of the master,
    and the client then reaches the VIP at the vMAC through the new master's bridge port."""
    lower = "keepalived" if higher == "vmacd" else "vmacd"
    lb = lab("pair")
    lo = routers(lb, lower, "r2", 100)          # the lower one first: it must yield, not just lose a race
    hi = routers(lb, higher, "r1", 200)
    elect((hi, "master"), (lo, "backup"))
    stays([(hi, "master"), (lo, "backup")], 0.6)   # six advert intervals without a flap
    assert vip_holders(lb) == ["r1"]
    assert arping_mac(lb, "c1", lb.vip("lan")) == VMAC
    assert fdb_port(lb, VMAC) == [lb.bridge_port("r1", "lan")]

    # each accepted the other's default checksum (pseudo-header): vmacd counted the form, keepalived
    # logged no refusal and stayed backup / yielded
    vm = lo if lower == "vmacd" else hi
    m = metrics(lb, vm.node)
    assert metric(m, "vmacd_checksum_variant_total", variant="pseudo-header") >= 1
    assert metric(m, "vmacd_packets_dropped_total") == 0
    ka = hi if higher == "keepalived" else lo
    assert not log_lines(ka, r"Invalid VRRPv3 checksum|invalid|unexpected")

    done = fault(lb, hi, event)
    wait_until(lambda: lo.state() == "master", failover_bound_s(100),
               what=f"{lo.name} master after {event}")
    took = time.monotonic() - done["t"]
    if event == "term":
        # priority 0 from the leaving master: the backup waits Skew_Time, not Master_Down_Interval
        assert took < 0.3, took
        wait_until(lambda: not hi.pids(), 10.0, what=f"{hi.name} to exit")
    # a graceful stop removes the VIP; what a crashed box keeps does not matter: its port is down
    wait_until(lambda: vip_holders(lb) == ["r2"] if event == "term" else "r2" in vip_holders(lb), 2.0,
               what="VIP on r2")
    assert arping_mac(lb, "c1", lb.vip("lan")) == VMAC
    wait_until(lambda: fdb_port(lb, VMAC) == [lb.bridge_port("r2", "lan")], 2.0,
               what="vMAC learned on r2's port")


@row("keepalived", 4, "multicast", "v3", "vmacd `v3_checksum_pseudoheader = false` (RFC 9568 "
     "§5.2.8 form); keepalived's default", "vmacd higher", 2,
     "the split brain and how it shows: keepalived logs `Invalid VRRPv3 checksum` and is master "
     "too (and silent: it restarts its timer on each advert it refuses)")
def test_rfc_checksum_is_refused_by_default_keepalived(lab, routers) -> None:
    """vmacd with v3_checksum_pseudoheader = false (the RFC 9568 §5.2.8 form) against keepalived
    2.2.7's default: keepalived refuses every advert ("Invalid VRRPv3 checksum") and becomes master
    beside vmacd; vmacd still accepts keepalived's pseudo-header form and counts it."""
    lb = lab("pair")
    ka = routers(lb, "keepalived", "r2", 100)
    vm = routers(lb, "vmacd", "r1", 200, v3_checksum_pseudoheader=False)
    elect((vm, "master"), (ka, "master"))          # split brain, which is the evidence
    wait_until(lambda: log_lines(ka, r"\(VI_51\) Invalid VRRPv3 checksum"), 3.0,
               what="keepalived's checksum refusal in its log")
    # vmacd accepted keepalived's pseudo-header form while it was backup; as master it may hear no
    # more of it: keepalived 2.2.7 restarts its advert timer on each advert it refuses, so beside
    # vmacd's steady rhythm it goes silent. Hence the docs: never run the RFC form beside it.
    assert metric(metrics(lb, "r1"), "vmacd_checksum_variant_total", variant="pseudo-header") >= 1
    stays([(vm, "master"), (ka, "master")], 0.3)


@pytest.mark.rfc("9568-5.2.8-2", "holds")
@row("keepalived", 4, "multicast", "v3", "vmacd `v3_checksum_pseudoheader = false`; keepalived "
     "`v3_checksum_as_v2` (keepalived >= 2.2.8 only)", "peer higher", 1,
     "states; vmacd counts keepalived's checksum as `no-pseudo-header`")
def test_rfc_checksum_with_keepalived_v3_checksum_as_v2(lab, routers) -> None:
    """keepalived >= 2.2.8 `v3_checksum_as_v2` + vmacd `v3_checksum_pseudoheader = false`: one
    master, vmacd counts keepalived's form as "no-pseudo-header"."""
    if not keepalived_knows("v3_checksum_as_v2"):
        pytest.skip("keepalived 2.2.7 answers \"Unknown keyword 'v3_checksum_as_v2'\" (added in 2.2.8); "
                    "see test_no_pseudo_header_variant_is_counted for the receive side")
    lb = lab("pair")
    vm = routers(lb, "vmacd", "r2", 100, v3_checksum_pseudoheader=False)
    ka = routers(lb, "keepalived", "r1", 200, ka_instance=["v3_checksum_as_v2"])
    elect((ka, "master"), (vm, "backup"))
    stays([(ka, "master"), (vm, "backup")], 0.5)
    assert metric(metrics(lb, "r2"), "vmacd_checksum_variant_total", variant="no-pseudo-header") >= 1


def test_no_pseudo_header_variant_is_counted(lab, routers) -> None:
    """No sender of the lab (keepalived 2.2.7, FRR 8.4.4) can emit the RFC 9568 IPv4 form, so a
    vmacd peer with `v3_checksum_pseudoheader = false` plays that role: a default vmacd backup accepts
    it, stays backup and counts variant "no-pseudo-header" (and never "pseudo-header")."""
    lb = lab("pair")
    bk = routers(lb, "vmacd", "r2", 100)
    ms = routers(lb, "vmacd", "r1", 200, v3_checksum_pseudoheader=False)
    elect((ms, "master"), (bk, "backup"))
    stays([(ms, "master"), (bk, "backup")], 0.5)
    m = metrics(lb, "r2")
    assert metric(m, "vmacd_checksum_variant_total", variant="no-pseudo-header") >= 5
    assert metric(m, "vmacd_checksum_variant_total", variant="pseudo-header") == 0
