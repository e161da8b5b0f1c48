"""RFC 9568 link-layer rules on a real LAN: who answers ARP / NS for a VIP, and with which MAC;
solicited-node groups follow mastership; a backup stays silent. IPv4 and IPv6 pairs of vmacd.

The client asks with scapy (ARP who-has, ICMPv6 NS) and collects every answer for a second, so a
second answer — a backup's, or the master's parent with its own MAC — would be seen.
"""
from __future__ import annotations

import ipaddress
import json
import sys
import textwrap

import pytest
from vmaclab import impls
from vmaclab.util import wait_until

VRID = 51
VMAC4, VMAC6 = "00:00:5e:00:01:33", "00:00:5e:00:02:33"

ASK = textwrap.dedent("""
    import json, sys
    from scapy.all import ARP, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6, srp, conf
    from scapy.layers.inet6 import in6_getnsma, in6_getnsmac
    from scapy.utils6 import inet_pton
    import socket
    iface, target = sys.argv[1], sys.argv[2]
    mac = open(f"/sys/class/net/{iface}/address").read().strip()
    conf.verb = 0
    if ":" in target:
        ns_ip = socket.inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, target)))
        pkt = (Ether(src=mac, dst=in6_getnsmac(inet_pton(socket.AF_INET6, ns_ip)))
               / IPv6(src=sys.argv[3], dst=ns_ip, hlim=255) / ICMPv6ND_NS(tgt=target)
               / ICMPv6NDOptSrcLLAddr(lladdr=mac))
    else:
        pkt = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=sys.argv[3], pdst=target)
    ans, _ = srp(pkt, iface=iface, timeout=1, multi=True)
    out = []
    for _s, r in ans:
        if ARP in r and r[ARP].op == 2:
            out.append({"eth_src": r.src, "hw": r[ARP].hwsrc})
        elif ICMPv6ND_NA in r:
            lla = r.lastlayer().lladdr if hasattr(r.lastlayer(), "lladdr") else None
            out.append({"eth_src": r.src, "hw": lla, "router": int(r[ICMPv6ND_NA].R)})
    print(json.dumps(out))
""")


def _pair(lab, family: int):
    rs = []
    for node, prio in (("r1", 200), ("r2", 100)):
        r = impls.get("vmacd")().configure(lab, node, "lan", VRID, lab.vip("lan", family), prio, 100)
        r.start()
        rs.append(r)
    wait_until(lambda: [r.state() for r in rs] == ["master", "backup"], 5, what="election")
    return rs


def _ask(lab, target: str, family: int) -> list[dict]:
    src = lab.addr("c1", "lan", family)
    out = lab.run("c1", [sys.executable, "-c", ASK, lab.ifname("c1", "lan"), target, src]).stdout
    return json.loads(out.strip().splitlines()[-1])


def _groups(lab, node: str) -> set[str]:
    """IPv6 groups joined on the node's vMAC devices (`ip -6 maddr`, per-device sections)."""
    joined, dev = set(), ""
    for line in lab.run(node, ["ip", "-6", "maddr", "show"]).stdout.splitlines():
        if not line.startswith("\t"):
            dev = line.split(":", 1)[1].strip()
        elif dev.startswith("vm") and line.strip().startswith("inet6 "):
            joined.add(line.split()[1])
    return joined


@pytest.mark.rfc("9568-6.4.2-1", "holds")
@pytest.mark.rfc("9568-8.1.2-1", "holds")
@pytest.mark.rfc("9568-8.1.2-2", "holds")
@pytest.mark.rfc("9568-6.4.3-2", "holds")
def test_arp_for_the_vip_is_answered_once_by_the_master_from_the_vmac(lab):
    lb = lab("pair")
    _pair(lb, 4)
    replies = _ask(lb, lb.vip("lan"), 4)
    assert replies == [{"eth_src": VMAC4, "hw": VMAC4}], replies


@pytest.mark.rfc("9568-6.4.2-1", "refused")
@pytest.mark.rfc("9568-8.1.2-2", "refused")
def test_the_arp_check_sees_a_second_answer(lab):
    """The opposite input: a second box holding the VIP on its own MAC is caught by the check."""
    lb = lab("pair")
    _pair(lb, 4)
    lb.run("c1", ["ip", "addr", "add", f"{lb.vip('lan')}/32", "dev", lb.ifname("c1", "lan")])
    lb.run("r2", ["ip", "addr", "add", f"{lb.vip('lan')}/32", "dev", lb.ifname("r2", "lan")])
    lb.run("c1", ["ip", "addr", "del", f"{lb.vip('lan')}/32", "dev", lb.ifname("c1", "lan")])
    replies = _ask(lb, lb.vip("lan"), 4)
    assert len(replies) == 2 and {r["hw"] for r in replies} - {VMAC4}, replies


@pytest.mark.rfc("9568-6.4.2-2", "holds")
@pytest.mark.rfc("9568-8.2.2-1", "holds")
@pytest.mark.rfc("9568-8.2.2-2", "holds")
@pytest.mark.rfc("9568-6.4.3-4", "holds")
@pytest.mark.rfc("9568-6.4.3-3", "holds")
@pytest.mark.rfc("9568-6.4.2-9", "holds")
@pytest.mark.rfc("9568-6.4.3-3", "refused")
@pytest.mark.rfc("9568-6.4.2-9", "refused")
def test_ns_answered_once_by_the_master_and_groups_follow_mastership(lab):
    lb = lab("pair")
    r1, r2 = _pair(lb, 6)
    vip = lb.vip("lan", 6)
    replies = _ask(lb, vip, 6)
    assert replies == [{"eth_src": VMAC6, "hw": VMAC6, "router": 1}], replies
    tail = ipaddress.IPv6Address(vip).packed[13:]
    group = str(ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + tail))
    assert group in _groups(lb, "r1") and group not in _groups(lb, "r2")
    r1.stop()                                   # r1 leaves: its groups go, r2's come
    wait_until(lambda: r2.state() == "master", 3, what="r2 master")
    wait_until(lambda: group in _groups(lb, "r2"), 2, what="r2 joined the solicited-node group")
    assert group not in _groups(lb, "r1")
    assert _ask(lb, vip, 6) == [{"eth_src": VMAC6, "hw": VMAC6, "router": 1}]


@pytest.mark.rfc("9568-6.4.2-3", "holds")
@pytest.mark.rfc("9568-6.4.2-2", "refused")
def test_ipv6_backup_sends_nothing_from_the_vmac(lab, tmp_path):
    """No RA, NA, MLD or advert from the backup's vMAC; the capture does see the master's."""
    from vmaclab.observe import Observer, bridge_ports
    lb = lab("pair")
    _pair(lb, 6)
    br = lb.bridge_ns("lan")
    obs = Observer.start(br, bridge_ports(br, lb.bridge("lan")), str(tmp_path / "cap.jsonl"))
    _ask(lb, lb.vip("lan", 6), 6)
    wait_until(lambda: any(e.get("src_mac") == VMAC6 for e in obs.events()), 2, what="master frames")
    events = obs.stop()
    r2_port = lb.bridge_port("r2", "lan")
    from_backup = [e for e in events if e.get("ifname") == r2_port and e.get("dir") == "rx"
                   and e.get("src_mac") == VMAC6]
    assert from_backup == []
    assert any(e.get("src_mac") == VMAC6 and e.get("ifname") == lb.bridge_port("r1", "lan")
               for e in events)
