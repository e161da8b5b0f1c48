"""VRRPv3 over IPv4 with FRR vrrpd, and what vmacd puts on the wire (IPv6 address lists with
keepalived and FRR: test_ipv6_lists.py).

Wire checks use tcpdump on the LAN bridge and scapy's VRRPv3 layer (its checksum is the
pseudo-header form for IPv4 and the RFC 8200 one for IPv6) as an independent judge.
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
    row,
    stays,
)
from vmaclab.faults import fault
from vmaclab.util import wait_until

VMAC4 = f"00:00:5e:00:01:{VRID:02x}"
VMAC6 = f"00:00:5e:00:02:{VRID:02x}"
VR_LL = "fe80::1"


# --------------------------------------------------------------------------- FRR vrrpd

@pytest.mark.parametrize("higher", [
    pytest.param(h, marks=row("frr", 4, "multicast", "v3", "defaults on both (macvlan, 100 ms)", o, 1,
                              "states held 0.6 s; no vmacd drop; FRR accepts vmacd's checksum, vmacd "
                              "counts FRR's as pseudo-header; crash of FRR (peer higher): vmacd "
                              "master"))
    for h, o in (("vmacd", "vmacd higher"), ("frr", "peer higher"))])
def test_v3_frr_election(lab, routers, higher: str) -> None:
    """vmacd and FRR 8.4.4 vrrpd (v3, 100 ms) elect the higher priority either way. An FRR backup
    keeps the VIP on its (protodown) macvlan, so we judge by the daemons' states, not by ARP."""
    lb = lab("pair")
    lower = "frr" if higher == "vmacd" else "vmacd"
    lo = routers(lb, lower, "r2", 100)
    hi = routers(lb, higher, "r1", 200)
    elect((hi, "master"), (lo, "backup"))
    stays([(hi, "master"), (lo, "backup")], 0.6)
    vm = hi if higher == "vmacd" else lo
    m = metrics(lb, vm.node)
    assert metric(m, "vmacd_packets_dropped_total") == 0
    if higher == "frr":   # FRR's checksum form, as vmacd classified it
        assert metric(m, "vmacd_checksum_variant_total", variant="pseudo-header") >= 5
        fault(lb, hi, "crash")
        wait_until(lambda: lo.state() == "master", 2.0, what="vmacd master after FRR crash")
    else:                 # FRR accepted ours: it stays backup and logs no checksum complaint
        assert not log_lines(lo, r"Bad VRRP checksum")


# --------------------------------------------------------------------------- the wire

def _own_link_local(lb, node: str) -> str:
    out = lb.run(node, ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]).stdout
    return out.split()[3].split("/")[0]


def _holds(*ids: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.rfc(i, "holds") for i in ids]


# the IPv4 sender (address, group, TTL, protocol, vMAC block) and the IPv6 one
V4_WIRE = ("9568-5.1.1.1-1", "9568-5.1.1.2-1", "9568-5.1.1.3-1", "9568-5.1.1.4-1", "9568-7.2-4",
           "9568-7.3-1")
V6_WIRE = ("9568-5.1.2.1-1", "9568-5.1.2.3-1", "9568-5.2.8-3", "9568-7.3-2")


@pytest.mark.rfc("9568-7.2-2", "holds")
@pytest.mark.rfc("9568-7.2-3", "holds")
@pytest.mark.parametrize(("family", "pseudo"), [
    pytest.param(4, True, id="v4", marks=_holds(*V4_WIRE)),
    pytest.param(4, False, id="v4-rfc-checksum", marks=_holds(*V4_WIRE, "9568-5.2.8-2")),
    pytest.param(6, True, id="v6", marks=_holds(*V6_WIRE)),
])
def test_wire_of_a_vmacd_master(lab, routers, tmp_path, family: int, pseudo: bool) -> None:
    """Every advert of a vmacd master: from the vMAC, TTL / hop limit 255, to 224.0.0.18 / ff02::12,
    protocol 112, a checksum scapy's VRRPv3 layer recomputes identically (with
    `v3_checksum_pseudoheader = false`: it differs from scapy's and is the plain RFC 1071 sum of the
    message, RFC 9568 §5.2.8); IPv6 source = the router's own link-local (not fe80::1)."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRPv3
    from scapy.utils import checksum

    lb = lab("pair")
    cap = Tcpdump(lb, tmp_path / "vrrp.pcap", "r1", "ip proto 112" if family == 4 else "ip6 proto 112")
    kw = {} if pseudo else {"v3_checksum_pseudoheader": False}
    vm = routers(lb, "vmacd", "r1", 200, vip=lb.vip("lan", family), **kw)
    elect((vm, "master"))
    wait_until(lambda: metric(metrics(lb, "r1"), "vmacd_adverts_sent_total") >= 10, 3.0, what="10 adverts")
    pkts = [p for p in cap.stop() if VRRPv3 in p]
    assert len(pkts) >= 8, [p.summary() for p in pkts]
    layer = IP if family == 4 else IPv6
    for p in pkts:
        v, ip = p[VRRPv3], p[layer]
        assert (v.version, v.type, v.vrid, v.priority, v.adv) == (3, 1, VRID, 200, 10)
        fresh = layer(bytes(ip))
        fresh[VRRPv3].chksum = None                      # scapy recomputes it on build
        scapy_sum = layer(bytes(fresh))[VRRPv3].chksum
        if pseudo:
            assert scapy_sum == v.chksum, p.summary()
        else:
            bare = bytearray(bytes(v))
            bare[6:8] = b"\0\0"
            assert scapy_sum != v.chksum and checksum(bytes(bare)) == v.chksum, p.summary()
        if family == 4:
            assert (p[Ether].src, ip.ttl, ip.dst, ip.proto, ip.src) == (VMAC4, 255, "224.0.0.18", 112,
                                                                         lb.addr("r1", "lan"))
        else:
            assert (p[Ether].src, ip.hlim, ip.dst, ip.nh) == (VMAC6, 255, "ff02::12", 112)
            assert ip.src == _own_link_local(lb, "r1") and ip.src != VR_LL
            assert v.addrlist[0] == VR_LL
