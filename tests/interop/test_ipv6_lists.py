"""IPv6 VRRPv3 address lists: vmacd with keepalived 2.2.7 and FRR 8.4.4 vrrpd, both priority orders.

What the peers do with a list that differs from theirs (lab-tested, see docs/interop.md):
keepalived drops an advert whose address count differs from its own ("received an unexpected ip
number count 2, expected 1") or that lacks one of its addresses ("ip address associated with VRID
51 not present in MASTER advert"); FRR vrrpd checks neither. Both send their usual list (the
global VIP only), whose first address is not link-local: vmacd accepts it by default.

Each test judges by the daemons' own states, the client's ping and Neighbor Discovery of the VIP,
vmacd's metrics and the peers' log lines.
"""
from __future__ import annotations

import pytest
from interop_util import (
    VRID,
    Tcpdump,
    elect,
    log_lines,
    metric,
    metrics,
    ndisc_mac,
    ping_ok,
    row,
    stays,
)
from vmaclab.faults import fault
from vmaclab.util import wait_until

VMAC6 = f"00:00:5e:00:02:{VRID:02x}"
VR_LL = "fe80::1"
KA_REFUSALS = r"unexpected ip number count|not present in MASTER advert|expected \d+ VIPs"


def _start(lb, routers, higher: str, peer: str, peer_kw: dict, vmacd_kw: dict):
    """The lower priority first (it must yield, not just lose a race); returns (hi, lo)."""
    lower = peer if higher == "vmacd" else "vmacd"
    kws = {peer: peer_kw, "vmacd": vmacd_kw}
    vip = lb.vip("lan", 6)
    lo = routers(lb, lower, "r2", 100, vip=vip, **kws[lower])
    hi = routers(lb, higher, "r1", 200, vip=vip, **kws[higher])
    return hi, lo


def _one_master_then_failover(lb, hi, lo) -> None:
    """One master (the higher), the other backup for six intervals; the client pings the VIP at
    the vMAC; after a crash of the master the backup takes over and the client still gets there."""
    vip = lb.vip("lan", 6)
    elect((hi, "master"), (lo, "backup"))
    stays([(hi, "master"), (lo, "backup")], 0.6)
    assert ping_ok(lb, "c1", vip)
    assert ndisc_mac(lb, "c1", vip) == VMAC6
    fault(lb, hi, "crash")
    wait_until(lambda: lo.state() == "master", 2.0, what=f"{lo.name} master after the crash")
    assert ping_ok(lb, "c1", vip)
    assert ndisc_mac(lb, "c1", vip) == VMAC6


def _vmacd(hi, lo):
    return hi if hi.name == "vmacd" else lo


def _peer(hi, lo):
    return lo if hi.name == "vmacd" else hi


ORDER = {"vmacd": "vmacd higher", "keepalived": "peer higher", "frr": "peer higher"}


# --------------------------------------------------------------------------- keepalived

@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("keepalived", 6, "multicast", "v3",
                              "keepalived's usual list (the global VIP only); vmacd the same list "
                              "with `ipv6_link_local_first = false`", ORDER[h], 1,
                              "states; ping and ND of the VIP from the client (vMAC); no refusal in "
                              "keepalived's log, no vmacd drop; crash of the master: the backup "
                              "takes over"))
    for h in ("vmacd", "keepalived")])
def test_keepalived_usual_list_with_the_same_list_on_vmacd(lab, routers, higher: str) -> None:
    """The recommended pairing for unchanged keepalived boxes: vmacd sends keepalived's own list."""
    lb = lab("pair")
    same = {"vips": [lb.vip("lan", 6)], "ipv6_link_local_first": False}
    hi, lo = _start(lb, routers, higher, "keepalived", {}, same)
    vm, ka = _vmacd(hi, lo), _peer(hi, lo)
    elect((hi, "master"), (lo, "backup"))
    assert metric(metrics(lb, vm.node), "vmacd_packets_dropped_total") == 0
    assert not log_lines(ka, KA_REFUSALS)
    _one_master_then_failover(lb, hi, lo)


@pytest.mark.rfc("9568-5.2.9-1", "holds")
@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("keepalived", 6, "multicast", "v3",
                              "keepalived lists `fe80::1` then the global VIP; vmacd's default "
                              "(the same list, RFC 9568 §5.2.9)", ORDER[h], 1,
                              "states; ping and ND of the VIP (vMAC); no refusal in keepalived's "
                              "log, no vmacd drop; crash of the master: the backup takes over"))
    for h in ("vmacd", "keepalived")])
def test_keepalived_with_link_local_first(lab, routers, higher: str) -> None:
    """The RFC-conformant pairing: keepalived given vmacd's list, link-local first."""
    lb = lab("pair")
    hi, lo = _start(lb, routers, higher, "keepalived", {"vips": [VR_LL, lb.vip("lan", 6)]}, {})
    vm, ka = _vmacd(hi, lo), _peer(hi, lo)
    elect((hi, "master"), (lo, "backup"))
    assert metric(metrics(lb, vm.node), "vmacd_packets_dropped_total") == 0
    assert not log_lines(ka, KA_REFUSALS)
    _one_master_then_failover(lb, hi, lo)


@pytest.mark.parametrize("higher", [
    pytest.param("keepalived", marks=row(
        "keepalived", 6, "multicast", "v3", "keepalived's usual list (global VIP only); vmacd's "
        "default list (`fe80::1`, then the global VIP)", "peer higher", 1,
        "vmacd accepts keepalived's list (first address not link-local) and stays backup; no vmacd "
        "drop")),
    pytest.param("vmacd", marks=row(
        "keepalived", 6, "multicast", "v3", "keepalived's usual list (global VIP only); vmacd's "
        "default list (`fe80::1`, then the global VIP)", "vmacd higher", 2,
        "the split brain and how it shows: keepalived logs `received an unexpected ip number count "
        "2, expected 1` and is master too; vmacd's status warns that a keepalived peer with that "
        "list drops its adverts")),
])
def test_keepalived_usual_list_with_vmacd_default_list(lab, routers, higher: str) -> None:
    """Different lists: keepalived refuses vmacd's adverts (count 2, expected 1), vmacd accepts
    keepalived's. With keepalived higher that is one master; with vmacd higher both are master,
    and vmacd's dual-master counter is what shows it."""
    lb = lab("pair")
    hi, lo = _start(lb, routers, higher, "keepalived", {}, {})
    vm, ka = _vmacd(hi, lo), _peer(hi, lo)
    if higher == "keepalived":
        elect((ka, "master"), (vm, "backup"))
        stays([(ka, "master"), (vm, "backup")], 0.6)
        assert metric(metrics(lb, vm.node), "vmacd_packets_dropped_total") == 0
        assert ping_ok(lb, "c1", lb.vip("lan", 6))
        return
    elect((vm, "master"), (ka, "master"))
    wait_until(lambda: log_lines(ka, r"\(VI_51\) received an unexpected ip number count 2, expected 1"),
               2.0, what="keepalived's refusal in its log")
    # keepalived 2.2.7 restarts its advert timer on every advert it refuses, so beside vmacd's
    # steady 100 ms it goes silent while master: vmacd shows the split brain from what it heard
    # earlier, keepalived's address list, in its status
    peers = vm.status()["instances"][0]["peers"]
    warned = [p for p in peers if any("a keepalived peer drops our adverts" in w for w in p["warnings"])]
    assert warned, peers
    assert metric(metrics(lb, vm.node), "vmacd_packets_dropped_total") == 0
    stays([(vm, "master"), (ka, "master")], 0.3)


# --------------------------------------------------------------------------- FRR vrrpd

@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("frr", 6, "multicast", "v3",
                              "FRR's usual `vrrp 51 ipv6 2001:db8:0:1::fe`; vmacd's default list "
                              "(`fe80::1`, then the global VIP)", ORDER[h], 1,
                              "states; ping and ND of the VIP (vMAC); no vmacd drop (FRR's list "
                              "accepted); crash of the master: the backup takes over"))
    for h in ("vmacd", "frr")])
def test_frr_usual_list_with_vmacd_default_list(lab, routers, higher: str) -> None:
    """FRR checks no address list, vmacd accepts FRR's: one master either way, no departure on
    vmacd's sending side needed."""
    lb = lab("pair")
    hi, lo = _start(lb, routers, higher, "frr", {}, {})
    vm = _vmacd(hi, lo)
    elect((hi, "master"), (lo, "backup"))
    stays([(hi, "master"), (lo, "backup")], 0.6)
    m = metrics(lb, vm.node)
    assert metric(m, "vmacd_packets_dropped_total") == 0
    if higher == "frr":     # vmacd, backup, heard FRR's global-first adverts and kept them
        assert metric(m, "vmacd_adverts_received_total") >= 5
    _one_master_then_failover(lb, hi, lo)


# --------------------------------------------------------------------------- what vmacd sends

@pytest.mark.rfc("9568-5.2.9-1", "holds")
@pytest.mark.parametrize("ll_first", [True, False], ids=["default", "ipv6_link_local_first-false"])
def test_the_list_vmacd_sends(lab, routers, tmp_path, ll_first: bool) -> None:
    """Captured on the bridge: by default every advert lists fe80::1 then the global VIP (RFC 9568
    §5.2.9); with `ipv6_link_local_first = false` and keepalived's list, exactly that list (one
    address), which is what keepalived compares its own with. (The rfc mark is for the default.)"""
    from scapy.layers.vrrp import VRRPv3

    lb = lab("pair")
    vip = lb.vip("lan", 6)
    cap = Tcpdump(lb, tmp_path / "vrrp.pcap", "r1", "ip6 proto 112")
    kw = {} if ll_first else {"vips": [vip], "ipv6_link_local_first": False}
    routers(lb, "vmacd", "r1", 200, vip=vip, **kw)
    wait_until(lambda: metric(metrics(lb, "r1"), "vmacd_adverts_sent_total") >= 5, 5.0, what="5 adverts")
    pkts = [p[VRRPv3] for p in cap.stop() if VRRPv3 in p]
    assert len(pkts) >= 4
    want = [VR_LL, vip] if ll_first else [vip]
    assert {(v.ipcount, tuple(v.addrlist)) for v in pkts} == {(len(want), tuple(want))}
