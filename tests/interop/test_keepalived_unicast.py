"""keepalived 2.2.7 `unicast_peer` with vmacd `unicast_peers` (VRRPv3, IPv4, 100 ms), both ways.

keepalived in unicast mode does not receive multicast adverts over IPv4 (its socket joins no
group; over IPv6 it logs "Expected unicast packet but received multicast packet"), so both sides
must be unicast. The IPv4 v3 checksum
pseudo-header then carries the unicast destination: keepalived and vmacd agree on it.
"""
from __future__ import annotations

import time

import pytest
from interop_util import VRID, arping_mac, elect, log_lines, metric, metrics, row, stays
from vmaclab.faults import fault
from vmaclab.observe import Observer, bridge_ports
from vmaclab.util import wait_until

VMAC = f"00:00:5e:00:01:{VRID:02x}"
FAILOVER_BOUND_S = 2.0          # Master_Down_Interval 0.36 s at 100 ms; margin for a loaded box


# the unicast_peers departure (docs/conformance.md, "Departures") is what is tested here: no rfc
# mark for 7.2-7
@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("keepalived", 4, "unicast", "v3",
                              "keepalived `unicast_peer { r-other }`; vmacd `unicast_peers = "
                              "[r-other]`", o, 1,
                              "states; arping of the VIP from the client (vMAC); every VRRP frame "
                              "on the LAN unicast to the peer, TTL 255; no vmacd drop, no refusal "
                              "in keepalived's log; crash of the master: the backup takes over "
                              "within 2 s and the client reaches the VIP"))
    for h, o in (("vmacd", "vmacd higher"), ("keepalived", "peer higher"))])
def test_unicast_peers_elect_and_fail_over(lab, routers, tmp_path, higher: str) -> None:
    lower = "keepalived" if higher == "vmacd" else "vmacd"
    lb = lab("pair")
    a1, a2 = lb.addr("r1", "lan"), lb.addr("r2", "lan")
    br = lb.bridge_ns("lan")
    obs = Observer.start(br, bridge_ports(br, lb.bridge("lan")), str(tmp_path / "cap.jsonl"),
                         kinds=["vrrp"])
    lo = routers(lb, lower, "r2", 100, unicast_peers=[a1])
    hi = routers(lb, higher, "r1", 200, unicast_peers=[a2])
    elect((hi, "master"), (lo, "backup"))
    stays([(hi, "master"), (lo, "backup")], 0.6)
    assert arping_mac(lb, "c1", lb.vip("lan")) == VMAC
    vm, ka = (hi, lo) if higher == "vmacd" else (lo, hi)
    m = metrics(lb, vm.node)
    assert metric(m, "vmacd_packets_dropped_total") == 0
    if higher == "keepalived":       # vmacd heard keepalived's unicast adverts as a backup
        assert metric(m, "vmacd_adverts_received_total") >= 5
    assert not log_lines(ka, r"Expected (uni|mult)icast|Invalid|invalid|unexpected")

    done = fault(lb, hi, "crash")
    wait_until(lambda: lo.state() == "master", FAILOVER_BOUND_S, what=f"{lo.name} master after crash")
    assert time.monotonic() - done["t"] < FAILOVER_BOUND_S
    assert arping_mac(lb, "c1", lb.vip("lan")) == VMAC
    frames = [e for e in obs.stop() if e.get("kind") == "vrrp"]
    assert len(frames) >= 10
    assert {e["dst_ip"] for e in frames} <= {a1, a2}, {e["dst_ip"] for e in frames}
    assert {e["ttl"] for e in frames} == {255}
    assert {e["src_ip"] for e in frames} == {a1, a2}          # both spoke, both were heard


@pytest.mark.parametrize("higher", [
    pytest.param("vmacd", marks=row(
        "keepalived", 4, "unicast", "v3", "keepalived `unicast_peer`; vmacd multicast (no "
        "`unicast_peers`)", "vmacd higher", 2,
        "the split brain and how it shows: keepalived (IPv4, unicast) never sees the multicast "
        "adverts, logs nothing and is master too; vmacd hears keepalived's unicast adverts and "
        "counts `vmacd_dual_master_total`")),
])
def test_unicast_keepalived_refuses_a_multicast_vmacd(lab, routers, higher: str) -> None:
    """Half a unicast configuration: both masters, and vmacd's dual-master counter shows it."""
    lb = lab("pair")
    ka = routers(lb, "keepalived", "r2", 100, unicast_peers=[lb.addr("r1", "lan")])
    vm = routers(lb, "vmacd", "r1", 200)
    elect((vm, "master"), (ka, "master"))
    wait_until(lambda: metric(metrics(lb, "r1"), "vmacd_dual_master_total") >= 1, 3.0,
               what="vmacd to count keepalived as a second master")
    stays([(vm, "master"), (ka, "master")], 0.3)
    assert not log_lines(ka, r"higher priority|Entering BACKUP STATE$")    # it never heard vmacd
