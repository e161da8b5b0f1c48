"""vmacd.linux.links + rtnl + sysctl in real namespaces: vMAC creation, claim/release, backup
silence, crash leftovers, link watch. Kernel state is read back with `ip` (not with the code under
test)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import nsutil
import pytest

from vmacd.linux import links as netlink
from vmacd.linux import sysctl
from vmacd.linux.link import PacketSender
from vmacd.loop import Loop

VRID = 51
VMAC4 = "00:00:5e:00:01:33"
VMAC6 = "00:00:5e:00:02:33"


@pytest.fixture
def lab():
    """r1 --veth-- r2; r1 eth0 192.0.2.1/24, r2 eth0 192.0.2.2/24."""
    with nsutil.veth_pair() as (n, r1, r2):
        yield n, r1, r2


@pytest.fixture
def mgr(lab):
    _, r1, _ = lab
    with nsutil.entered(r1):
        m = netlink.Links()
    try:
        yield m
    finally:
        m.close()


def link_json(n, ns, ifname):
    return json.loads(n.ip(ns, "-d", "-j", "link", "show", ifname))[0]


def addrs(n, ns, ifname, *fam):
    info = json.loads(n.ip(ns, *fam, "-j", "addr", "show", "dev", ifname))[0]
    return {f"{a['local']}/{a['prefixlen']}": a for a in info.get("addr_info", [])}


class Capture:
    """AF_PACKET capture of every frame on an interface (in the namespace it was made in)."""

    def __init__(self, ifname: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)

    def frames(self, seconds: float) -> list[bytes]:
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                time.sleep(0.005)
        self.sock.close()
        return out


def from_mac(frames, mac):
    raw = bytes.fromhex(mac.replace(":", ""))
    return [f for f in frames if f[6:12] == raw]


def _replying_macs(arping_out):
    """The MACs arping printed replies from ("Unicast reply from IP [MAC]")."""
    return {line.split("[")[1].split("]")[0].lower() for line in arping_out.splitlines()
            if "reply from" in line.lower()}


@pytest.mark.rfc("9568-7.4-1")
@pytest.mark.parametrize("family,mac", [(4, VMAC4), (6, VMAC6)])
def test_create_makes_silent_down_macvlan(lab, mgr, family, mac):
    n, r1, _ = lab
    with nsutil.entered(r1):
        v = mgr.create("lan", "eth0", VRID, family)
    info = link_json(n, r1, v.ifname)
    assert v.ifname == f"vmac51.{family}" and info["address"] == mac
    assert info["linkinfo"]["info_kind"] == "macvlan"
    assert info["linkinfo"]["info_data"]["mode"] == "bridge"         # the default, as config
    assert info["ifalias"] == "vmacd:lan"
    assert "UP" not in info["flags"]
    assert info["inet6_addr_gen_mode"] == "none"
    n.ip(r1, "link", "set", v.ifname, "up")       # even when up: no address derived from the vMAC
    time.sleep(0.1)
    assert not [a for a in addrs(n, r1, v.ifname) if a.startswith("fe80")]
    v6off = n.sh(r1, "cat", f"/proc/sys/net/ipv6/conf/{v.ifname}/disable_ipv6").strip()
    assert v6off == ("1" if family == 4 else "0")


@pytest.mark.rfc("9568-7.4-1", "refused")
def test_default_addrgenmode_would_derive_an_address(lab):
    """The opposite of 7.4-1: a plain macvlan with the vMAC gets an EUI-64 link-local from it."""
    n, r1, _ = lab
    n.ip(r1, "link", "add", "plain", "link", "eth0", "address", VMAC6, "type", "macvlan")
    n.ip(r1, "link", "set", "plain", "up")
    assert nsutil.wait_until(lambda: "fe80::200:5eff:fe00:233/64" in addrs(n, r1, "plain"))


def test_bridge_mode_and_errors(lab, mgr):
    n, r1, _ = lab
    with nsutil.entered(r1):
        v = mgr.create("wan", "eth0", 7, 4, mode="bridge", ifname="wan.7.4")
        assert link_json(n, r1, "wan.7.4")["linkinfo"]["info_data"]["mode"] == "bridge"
        with pytest.raises(netlink.LinkError, match="'nope0' does not exist"):
            mgr.create("x", "nope0", 1, 4)
        with pytest.raises(netlink.LinkError, match="mode must be one of"):
            mgr.create("x", "eth0", 1, 4, mode="vepa")
        p = mgr.create("p", "eth0", 8, 4, mode="private", ifname="p.8.4")
        assert link_json(n, r1, p.ifname)["linkinfo"]["info_data"]["mode"] == "private"
        n.ip(r1, "link", "add", "vmac9.4", "link", "eth0", "type", "macvlan")
        with pytest.raises(netlink.LinkError, match="not made by vmacd"):
            mgr.create("x", "eth0", 9, 4)
        again = mgr.create("wan", "eth0", 7, 4, mode="bridge", ifname="wan.7.4")  # ours: re-made
        assert again.ifname == v.ifname


@pytest.mark.rfc("9568-6.4.2-5")
@pytest.mark.rfc("9568-8.2.2-8")
def test_claim_release_v4_v6(lab, mgr):
    n, r1, _ = lab
    with nsutil.entered(r1):
        v4 = mgr.create("lan", "eth0", VRID, 4)
        v6 = mgr.create("lan6", "eth0", VRID, 6)
        mgr.claim(v4, ["192.0.2.254/24", "198.51.100.1/24"])
        mgr.claim(v6, ["fe80::1/64", "2001:db8::1/64"])
    a4, a6 = addrs(n, r1, v4.ifname), addrs(n, r1, v6.ifname)
    assert set(a4) == {"192.0.2.254/24", "198.51.100.1/24"}
    assert set(a6) == {"fe80::1/64", "2001:db8::1/64"}
    assert all(not a.get("tentative") and not a.get("dadfailed") for a in a6.values())
    assert "UP" in link_json(n, r1, v4.ifname)["flags"]
    routes = n.ip(r1, "route", "show")
    assert "198.51.100.0/24 dev vmac51.4" in routes          # a new prefix gets its route
    assert "192.0.2.0/24 dev vmac51.4" not in routes        # the parent's prefix: noprefixroute
    with nsutil.entered(r1):
        mgr.claim(v4, ["192.0.2.254/24"])                    # idempotent
        mgr.release(v4)
        mgr.release(v6)
    assert addrs(n, r1, v4.ifname) == {} and addrs(n, r1, v6.ifname) == {}
    assert "UP" not in link_json(n, r1, v4.ifname)["flags"]


def test_vmac_false_claims_on_parent_and_keeps_operator_addresses(lab, mgr):
    n, r1, _ = lab
    with nsutil.entered(r1):
        idx = mgr.ifindex("eth0")
        mgr.claim(idx, ["192.0.2.254/24"])
        assert set(addrs(n, r1, "eth0", "-4")) == {"192.0.2.1/24", "192.0.2.254/24"}
        assert mgr.primary_address(idx, 4) == "192.0.2.1"
        mgr.release(idx)
    assert set(addrs(n, r1, "eth0", "-4")) == {"192.0.2.1/24"}
    assert "UP" in link_json(n, r1, "eth0")["flags"]


@pytest.mark.rfc("9568-6.4.2-4", "holds")
@pytest.mark.rfc("9568-6.4.2-4", "refused")       # once claimed, the capture sees the vMAC
def test_backup_vmac_stays_silent_while_parent_flaps(lab, mgr):
    n, r1, r2 = lab
    with nsutil.entered(r1):
        v = mgr.create("lan", "eth0", VRID, 4)
        mgr.claim(v, ["192.0.2.254/24"])
        mgr.release(v)                                   # was master once, now backup
        sender = PacketSender(v.ifindex)
    with nsutil.entered(r2):
        cap = Capture("eth0")
    for _ in range(4):
        n.ip(r1, "link", "set", "eth0", "down")
        time.sleep(0.15)
        n.ip(r1, "link", "set", "eth0", "up")
        time.sleep(0.15)
    frame = bytes.fromhex("01005e000012") + bytes.fromhex(VMAC4.replace(":", "")) + b"\x08\x00" + bytes(46)
    assert sender.send(frame) == "ENETDOWN"                  # down vMAC: the kernel refuses
    frames = cap.frames(0.3)
    assert from_mac(frames, VMAC4) == []
    assert "UP" not in link_json(n, r1, v.ifname)["flags"]
    arp = n.sh(r2, "arping", "-c", "2", "-w", "1", "-I", "eth0", "192.0.2.254", check=False)
    assert "reply from" not in arp.lower()                  # 6.4.2-1: no ARP answer while backup
    # the opposite: once claimed, the capture does see the vMAC
    with nsutil.entered(r2):
        cap = Capture("eth0")
    with nsutil.entered(r1):
        mgr.claim(v, ["192.0.2.254/24"])
    assert sender.send(frame) is None
    assert len(from_mac(cap.frames(0.3), VMAC4)) >= 1
    sender.close()


@pytest.mark.rfc("9568-8.1.2-1", "holds")
@pytest.mark.rfc("9568-8.1.2-2", "holds")
@pytest.mark.rfc("9568-8.1.2-2", "refused")       # arp_ignore back at 0: the parent answers too
def test_master_arp_reply_only_from_vmac(lab, mgr):
    n, r1, r2 = lab
    with nsutil.entered(r1):
        guard = sysctl.SysctlGuard()
        guard.configure_parent("eth0")
        v = mgr.create("lan", "eth0", VRID, 4)
        mgr.claim(v, ["192.0.2.254/24"])
        v6 = mgr.create("lan6", "eth0", VRID, 6)     # an IPv6 vMAC must not answer ARP either
        mgr.claim(v6, ["fe80::1/64"])
    out = n.sh(r2, "arping", "-c", "3", "-w", "2", "-I", "eth0", "192.0.2.254", check=False)
    macs = _replying_macs(out)
    assert macs == {VMAC4}
    # the opposite: with the parent's arp_ignore back at 0 the parent answers too, with its MAC
    with nsutil.entered(r1):
        assert guard.restore() == []
    out = n.sh(r2, "arping", "-c", "3", "-w", "2", "-I", "eth0", "192.0.2.254", check=False)
    macs = _replying_macs(out)
    assert VMAC4 in macs and len(macs) == 2


def test_sysctl_guard_sets_and_restores(lab):
    n, r1, _ = lab
    cat = lambda k: n.sh(r1, "cat", f"/proc/sys/net/ipv4/conf/eth0/{k}").strip()
    keys = ("arp_ignore", "arp_announce", "accept_local")
    before = tuple(cat(k) for k in keys)
    with nsutil.entered(r1):
        with sysctl.SysctlGuard() as guard:
            guard.configure_parent("eth0")
            assert tuple(cat(k) for k in keys) == ("1", "2", "1")
        with pytest.raises(sysctl.SysctlError, match="nope0"):
            sysctl.SysctlGuard().configure_parent("nope0")
    assert tuple(cat(k) for k in keys) == before          # every value it set is put back


CRASHER = """
import sys, time
from vmacd.linux import links
m = links.Links()
lan = m.create("lan", "eth0", 51, 4); m.claim(lan, ["192.0.2.254/24"])
old = m.create("old", "eth0", 52, 4); m.claim(old, ["192.0.2.253/24"])
m.claim(m.ifindex("eth0"), ["203.0.113.9/24"])
print("ready", flush=True); time.sleep(60)
"""


def test_adopt_or_clean_after_sigkill(lab):
    n, r1, _ = lab
    n.ip(r1, "addr", "add", "203.0.113.1/24", "dev", "eth0")          # the operator's, kept
    proc = subprocess.Popen(["ip", "netns", "exec", r1, sys.executable, "-c", CRASHER],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert "192.0.2.254/24" in addrs(n, r1, "vmac51.4")            # the crash left it all up
    with nsutil.entered(r1):
        m = netlink.Links()
        done = m.adopt_or_clean(keep={"lan"})
        m.close()
    got = {(d.kind, d.ifname, d.action, d.address) for d in done}
    assert got == {("macvlan", "vmac51.4", "adopted", ""), ("macvlan", "vmac52.4", "deleted", ""),
                   ("vip", "eth0", "removed", "203.0.113.9/24")}
    assert "UP" not in link_json(n, r1, "vmac51.4")["flags"] and addrs(n, r1, "vmac51.4") == {}
    assert n.ip(r1, "link", "show", "vmac52.4", check=False) == ""
    assert set(addrs(n, r1, "eth0", "-4")) == {"192.0.2.1/24", "203.0.113.1/24"}


def test_link_watch_events_and_backup_vmac_not_raised(lab, mgr):
    """Non-polling link watch through loop.add_reader. Admin changes are reported at once;
    carrier changes (the peer's side) come through the kernel's linkwatch, up to ~1 s late."""
    n, r1, r2 = lab
    with nsutil.entered(r1):
        v = mgr.create("lan", "eth0", VRID, 4)
        watcher = netlink.LinkWatcher(mgr)
    events: list[netlink.LinkChanged] = []
    loop = Loop()

    def on_read():
        for e in watcher.read():
            if isinstance(e, netlink.LinkChanged):        # (address changes come too)
                events.append(e)

    def expect(up: bool) -> float:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            loop.run_once(max_wait=0.05)
            found = [e for e in events if e.ifname == "eth0"]
            if found:
                events.clear()
                assert found[-1].up is up
                return time.monotonic()
        raise AssertionError(f"no eth0 {'up' if up else 'down'} event")

    loop.add_reader(watcher.fileno(), on_read)
    seen: list[netlink.LinkChanged] = []
    t0 = time.monotonic()
    n.ip(r1, "link", "set", "eth0", "down")          # admin: immediate
    assert expect(False) - t0 < 0.2
    n.ip(r1, "link", "set", "eth0", "up")
    expect(True)
    n.ip(r2, "link", "set", "eth0", "down")          # carrier loss seen from r1
    expect(False)
    n.ip(r2, "link", "set", "eth0", "up")
    expect(True)
    loop.remove_reader(watcher.fileno())
    loop.close()
    watcher.close()
    assert all(not e.up for e in seen + events if e.ifname == v.ifname)
    assert "UP" not in link_json(n, r1, v.ifname)["flags"]


def test_link_watch_reports_address_changes_and_counts_overruns(lab):
    """Address changes come as one AddressesChanged per interface per read(); a watcher that
    falls behind loses notifications (ENOBUFS), counts it, and the caller re-reads the links."""
    n, r1, _r2 = lab
    with nsutil.entered(r1):
        watcher = netlink.LinkWatcher(netlink.Links())
    eth0 = int(json.loads(n.ip(r1, "-j", "link", "show", "eth0"))[0]["ifindex"])
    try:
        n.ip(r1, "addr", "add", "198.51.100.7/24", "dev", "eth0")
        n.ip(r1, "addr", "del", "198.51.100.7/24", "dev", "eth0")
        time.sleep(0.1)
        assert [e for e in watcher.read() if isinstance(e, netlink.AddressesChanged)] == \
            [netlink.AddressesChanged(eth0)]
        watcher.nl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)   # the kernel's minimum
        script = "".join(f"addr add 198.51.100.{i}/24 dev eth0\n" for i in range(10, 200))
        subprocess.run(["ip", "-n", r1, "-batch", "-"], input=script, text=True, check=True)
        watcher.read()
        assert watcher.overruns >= 1
    finally:
        watcher.close()
