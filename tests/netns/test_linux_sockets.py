"""vmacd.linux.sockets + link: adverts sent as full frames from the vMAC over AF_PACKET arrive with
TTL/hop limit 255 and the right MAC/IP; the per-interface raw receive sockets hand IPv4 packets
whole (TTL in the header) and IPv6 payloads with the hop limit and destination from cmsgs."""
from __future__ import annotations

import ipaddress
import select
import socket
import time
from typing import NamedTuple

import nsutil
import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRPv3

from vmacd.linux import links as netlink
from vmacd.linux.link import PacketSender
from vmacd.linux.sockets import VrrpSocket


class Got(NamedTuple):
    data: bytes                  # the VRRP (or AH + VRRP) payload
    src: object
    dst: object
    ttl: int | None
    proto: int
    header: bytes = b""

VMAC4 = "00:00:5e:00:01:33"
VMAC6 = "00:00:5e:00:02:33"


@pytest.fixture
def lab():
    """r1 --veth-- r2 with IPv4 and link-locals; r1 has the vMACs of VRID 51 claimed (master)."""
    with nsutil.veth_pair() as (n, r1, r2):
        for ns, host in ((r1, "a1"), (r2, "a2")):
            n.ip(ns, "addr", "add", f"fe80::{host}/64", "dev", "eth0", "nodad")
            n.ip(ns, "addr", "add", f"2001:db8::{host}/64", "dev", "eth0", "nodad")
        with nsutil.entered(r1):
            mgr = netlink.Links()
            v4 = mgr.create("lan", "eth0", 51, 4)
            v6 = mgr.create("lan6", "eth0", 51, 6)
            mgr.claim(v4, ["192.0.2.254/24"])
            mgr.claim(v6, ["fe80::1/64"])
        try:
            yield n, r1, r2, v4, v6
        finally:
            mgr.close()


def _recv(sock: VrrpSocket) -> Got | None:
    if sock.family == 6:
        got = sock.recv6()
        return None if got is None else Got(got[0], got[1], got[2], got[3], sock.proto)
    try:
        data = sock.sock.recv(8192)
    except BlockingIOError:
        return None
    ihl = (data[0] & 15) * 4
    return Got(data[ihl:], ipaddress.ip_address(data[12:16]), ipaddress.ip_address(data[16:20]),
               data[8], data[9], data[:ihl])


def rx_socket(family: int, proto: int = 112, join: bool = True) -> VrrpSocket:
    sock = VrrpSocket(family, "eth0", socket.if_nametoindex("eth0"), proto)
    if join:
        sock.join()
    return sock


def recv_one(sock: VrrpSocket, timeout: float = 2.0, want=lambda r: True):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        select.select([sock], [], [], 0.05)
        got = _recv(sock)
        if got is not None and want(got):
            return got
    return None


def v4_frame(ttl=255, vrid=51, dst="224.0.0.18", src_ip="192.0.2.1", mac=VMAC4):
    adv = VRRPv3(vrid=vrid, priority=200, ipcount=1, addrlist=["192.0.2.254"], adv=100)
    return bytes(Ether(src=mac, dst="01:00:5e:00:00:12") / IP(src=src_ip, dst=dst, ttl=ttl) / adv)


def v6_frame(hlim=255, src_ip="fe80::a1", mac=VMAC6):
    adv = VRRPv3(vrid=51, priority=200, ipcount=1, addrlist=["fe80::1"], adv=100)
    return bytes(Ether(src=mac, dst="33:33:00:00:00:12") / IPv6(src=src_ip, dst="ff02::12", hlim=hlim) / adv)


@pytest.mark.rfc("9568-5.1.1.3-1")
@pytest.mark.rfc("9568-7.2-3")
@pytest.mark.rfc("9568-7.2-4")
def test_v4_advert_from_vmac_received_with_ttl_and_ifindex(lab):
    _, r1, r2, v4, _ = lab
    with nsutil.entered(r2):
        rx = rx_socket(4)
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        cap.bind(("eth0", 0))
        cap.settimeout(2)
    with nsutil.entered(r1):
        tx = PacketSender(v4.ifindex)
    frame = v4_frame()
    assert tx.send(frame) is None and tx.sent == 1
    got = recv_one(rx)
    assert got is not None
    assert (got.ttl, str(got.src), str(got.dst), got.proto) == (255, "192.0.2.1", "224.0.0.18", 112)
    assert got.data == bytes(frame[34:]) and len(got.header) == 20
    wire = Ether(cap.recv(2000))
    while wire[IP].proto != 112:
        wire = Ether(cap.recv(2000))
    assert (wire.src, wire[IP].src, wire[IP].ttl) == (VMAC4, "192.0.2.1", 255)
    # the opposite: a TTL 254 advert is reported as such (the codec drops it, reason "ttl")
    tx.send(v4_frame(ttl=254))
    assert recv_one(rx).ttl == 254
    for s in (rx, tx):
        s.close()
    cap.close()


@pytest.mark.rfc("9568-5.1.2.3-1")
@pytest.mark.rfc("9568-5.1.2.3-2")
@pytest.mark.rfc("9568-7.2-5")
def test_v6_advert_hop_limit_from_cmsg(lab):
    _, r1, r2, _, v6 = lab
    with nsutil.entered(r2):
        rx = rx_socket(6)
    with nsutil.entered(r1):
        tx = PacketSender(v6.ifindex)
    frame = v6_frame()
    assert tx.send(frame) is None
    got = recv_one(rx)
    assert got is not None
    assert (got.ttl, str(got.src), str(got.dst)) == (255, "fe80::a1", "ff02::12")
    assert got.data == bytes(frame[54:]) and got.header == b""
    tx.send(v6_frame(hlim=1))
    assert recv_one(rx).ttl == 1
    # the opposite of "hop limit from the cmsg": a socket without IPV6_RECVHOPLIMIT gets no
    # cmsg and reports None, never an assumed 255
    with nsutil.entered(r2):
        bare = rx_socket(6)
        bare.sock.setsockopt(socket.IPPROTO_IPV6, 51, 0)   # IPV6_RECVHOPLIMIT off
    tx.send(frame)
    assert recv_one(bare).ttl is None
    for s in (rx, tx, bare):
        s.close()


def test_private_mode_split_brain_advert_arrives_on_the_macvlan(lab):
    """Two masters with the same vMAC: in private mode r2's copy of r1's advert is handed only to
    r2's up vMAC (source MAC = a local macvlan's MAC), so a socket on that vMAC device gets it
    (the daemon routes it to the same instance). With r2's vMAC down it comes on the parent."""
    _, r1, r2, v4, _ = lab
    with nsutil.entered(r2):
        mgr = netlink.Links()
        mine = mgr.create("lan", "eth0", 51, 4, mode="private")
        on_parent = rx_socket(4)
        on_vmac = VrrpSocket(4, mine.ifname, mine.ifindex)
        on_vmac.join()
        mgr.claim(mine, ["192.0.2.254/24"])
    with nsutil.entered(r1):
        tx = PacketSender(v4.ifindex)
    tx.send(v4_frame())
    assert recv_one(on_vmac) is not None and recv_one(on_parent, timeout=0.3) is None
    with nsutil.entered(r2):
        mgr.release(mine)
    tx.send(v4_frame())
    assert recv_one(on_parent) is not None
    with nsutil.entered(r2):
        mgr.close()
    for s in (on_parent, on_vmac, tx):           # closing drops the group membership
        s.close()


@pytest.mark.parametrize("family,peer,src", [(4, "192.0.2.2", "192.0.2.1"),
                                             (6, "2001:db8::a2", "2001:db8::a1")])
def test_unicast_send_ttl_255(lab, family, peer, src):
    _, r1, r2, _, _ = lab
    with nsutil.entered(r2):
        rx = rx_socket(family, join=False)            # no group join in unicast mode
    with nsutil.entered(r1):
        tx = rx_socket(family, join=False)
        eth0 = socket.if_nametoindex("eth0")
    payload = bytes.fromhex("3109640000640000")     # a VRRPv3 header, no addresses
    assert tx.send_unicast(payload, peer, ifindex=eth0, src=src) is None
    got = recv_one(rx, want=lambda r: r.data == payload)
    assert got is not None
    assert (got.ttl, str(got.src), str(got.dst)) == (255, src, peer)
    if family == 6:     # (an IPv4 socket bound to its device takes any peer as on-link)
        assert tx.send_unicast(payload, "2001:db8:ffff::1") == "ENETUNREACH"
        assert tx.errors == {"ENETUNREACH": 1}
    rx.close()
    tx.close()


def test_ah_socket_and_errors(lab):
    _, r1, r2, v4, _ = lab
    with nsutil.entered(r2):
        rx = rx_socket(4, proto=51)
    with nsutil.entered(r1):
        tx = PacketSender(v4.ifindex)
    ah = bytes([112, 4, 0, 0]) + (1).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(12)
    adv = bytes(VRRPv3(vrid=51, priority=200, ipcount=0, adv=100))
    frame = Ether(src=VMAC4, dst="01:00:5e:00:00:12") / IP(
        src="192.0.2.1", dst="224.0.0.18", ttl=255, proto=51) / (ah + adv)
    assert tx.send(bytes(frame)) is None
    got = recv_one(rx)
    assert got is not None and got.proto == 51 and got.data == ah + adv
    assert tx.send(b"short") == "EINVAL"
    with pytest.raises(ValueError, match="no interface"):
        PacketSender(99999)
    with pytest.raises(ValueError):
        VrrpSocket(5, "eth0", 1)
    assert ipaddress.ip_address(str(got.src)).version == 4
    rx.close()
    tx.close()
