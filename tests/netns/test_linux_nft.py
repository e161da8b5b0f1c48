"""vmacd.linux.nft: accept = false drops traffic to the VIPs, never ARP or IPv6 ND."""
from __future__ import annotations

import json
import os
import select
import socket
import struct
import time

import nsutil
import pytest

from vmacd.linux import links as netlink
from vmacd.linux import sysctl
from vmacd.linux.nft import AcceptModeFilter, NftError


@pytest.fixture
def lab():
    with nsutil.veth_pair() as (n, r1, r2):
        n.ip(r1, "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
        n.ip(r2, "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
        with nsutil.entered(r1):
            mgr = netlink.Links()
            guard = sysctl.SysctlGuard()
            guard.configure_parent("eth0")
            v4 = mgr.create("lan", "eth0", 51, 4)
            v6 = mgr.create("lan6", "eth0", 51, 6)
            mgr.claim(v4, ["192.0.2.254/24"])
            mgr.claim(v6, ["fe80::1/64", "2001:db8::fe/64"])
            filt = AcceptModeFilter()
        try:
            yield n, r1, r2, filt
        finally:
            mgr.close()


def _csum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def answered(n, ns, addr, within=3.0):
    """Some echo is answered within `within` seconds (ND/DAD right after setup takes a moment)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if ping(n, ns, addr, 0.3):
            return True
    return False


def ping(n, ns, addr, timeout=0.6):
    """One ICMP echo from namespace `ns` (raw socket, no ping binary needed); True on a reply."""
    six = ":" in addr
    with nsutil.entered(ns):
        sock = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_RAW,
                             socket.IPPROTO_ICMPV6 if six else socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    body = struct.pack("!BBHHH", 128 if six else 8, 0, 0, ident, 1) + b"vmacd"
    if not six:
        body = body[:2] + struct.pack("!H", _csum(body)) + body[4:]
    try:
        sock.sendto(body, (addr, 0))
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, src = sock.recvfrom(2000)
            icmp = data if six else data[(data[0] & 15) * 4:]
            if src[0] == addr and icmp[0] == (129 if six else 0) and icmp[4:6] == body[4:6]:
                return True
        return False
    finally:
        sock.close()


def neigh_mac(n, ns, addr):
    entries = json.loads(n.ip(ns, "-j", "neigh", "show", addr))
    return entries[0].get("lladdr") if entries else None


@pytest.mark.rfc("9568-6.4.3-8", "holds")        # accept = true: the VIP answers
@pytest.mark.rfc("9568-6.4.3-8", "refused")      # accept = false: it does not
@pytest.mark.rfc("9568-6.4.3-9", "holds")
@pytest.mark.rfc("9568-6.4.3-9", "refused")      # the filter removed: answered again
@pytest.mark.rfc("9568-6.1-10", "holds")
@pytest.mark.rfc("9568-6.4.3-6", "holds")
@pytest.mark.rfc("9568-8.3.1-1", "holds")
def test_accept_false_drops_vip_traffic_but_not_arp_or_nd(lab):
    n, r1, r2, filt = lab
    assert answered(n, r2, "192.0.2.254") and answered(n, r2, "2001:db8::fe")   # accept = true: answered
    n.ip(r2, "neigh", "flush", "dev", "eth0")
    with nsutil.entered(r1):
        filt.add("lan", ["192.0.2.254/24"])
        filt.add("lan6", ["fe80::1/64", "2001:db8::fe/64"])
    assert not answered(n, r2, "192.0.2.254", 0.8)
    assert not answered(n, r2, "2001:db8::fe", 0.8)
    assert neigh_mac(n, r2, "192.0.2.254") == "00:00:5e:00:01:33"      # ARP still answered
    assert neigh_mac(n, r2, "2001:db8::fe") == "00:00:5e:00:02:33"     # NS/NA still work
    assert answered(n, r2, "192.0.2.1") and answered(n, r2, "2001:db8::1")      # own addresses untouched
    with nsutil.entered(r1):
        filt.remove("lan")
        assert filt.instances() == {"lan6": ("fe80::1", "2001:db8::fe")}
    assert answered(n, r2, "192.0.2.254") and not answered(n, r2, "2001:db8::fe", 0.8)
    with nsutil.entered(r1):
        filt.close()
    assert "vmacd" not in n.sh(r1, "nft", "list", "tables")
    assert answered(n, r2, "2001:db8::fe")


def test_nft_errors_are_messages(lab):
    _, r1, _, _ = lab
    with nsutil.entered(r1):
        with pytest.raises(NftError, match="not found"):
            AcceptModeFilter(nft="/nonexistent/nft").add("x", ["192.0.2.9"])
        filt = AcceptModeFilter()
        filt.add("a", ["192.0.2.9"])
        with pytest.raises(ValueError):
            filt.add("b", ["not-an-ip"])
        assert filt.instances() == {"a": ("192.0.2.9",)}
        filt.close()
        filt.close()                                  # idempotent, also without a table
