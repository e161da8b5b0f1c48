"""vmacd.linux.guardian: when the daemon dies (SIGKILL of its whole process group), the guardian
hands over as SIGTERM would: a priority-0 advert from the vMAC at once, the VIPs kept until a
successor is heard (or the handover bound passes), then the vMAC down and nothing from it after.
A disarmed guardian leaves everything; SIGTERM and SIGABRT do not move it."""
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

from vmacd.core import wire
from vmacd.linux.link import PacketSender

VMAC4 = "00:00:5e:00:01:33"
BOUND = 0.6                     # the fake instance's handover bound (s)

FAKE_DAEMON = f"BOUND = {BOUND}\n" + """
import ipaddress, sys, time
from vmacd.core import wire
from vmacd.linux.links import Links
from vmacd.linux.guardian import Guardian
m = Links()
v = m.create("lan", "eth0", 51, 4)
m.claim(v, ["192.0.2.254/24"])
parent = m.ifindex("eth0")
m.claim(parent, ["198.51.100.254/24"])
adv = wire.Advertisement(3, 51, 0, 10, (ipaddress.ip_address("192.0.2.254"),))
frame = wire.build_frame(v.mac, wire.build_ip_packet(adv, src="192.0.2.1", dst="224.0.0.18"))
g = Guardian.start()
g.own({"instance": "lan", "ifindex": v.ifindex, "vmac": True, "parent": parent, "family": 4,
       "vrid": 51, "version": 3, "primary": "192.0.2.1", "interval_cs": 10,
       "vips": ["192.0.2.254/24"], "src_mac": v.mac, "bound": BOUND, "peers": [],
       "stop": [], "auth": "none", "frame": frame.hex()})
g.vip(parent, "198.51.100.254/24")
g.vip(parent, "203.0.113.254/24")
g.unvip(parent, "203.0.113.254/24")     # released normally: the guardian must forget it
print(g.pid, flush=True)
if sys.argv[1] == "disarm":
    g.disarm()
    print("disarmed", flush=True)
time.sleep(60)
"""


@pytest.fixture
def lab():
    with nsutil.veth_pair() as (n, r1, r2):
        n.ip(r1, "addr", "add", "203.0.113.254/24", "dev", "eth0")   # the operator's
        yield n, r1, r2


def start_fake(r1, mode):
    proc = subprocess.Popen(["ip", "netns", "exec", r1, sys.executable, "-c", FAKE_DAEMON, mode],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    return proc, int(proc.stdout.readline())


def exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def up(n, ns, dev) -> bool:
    return "UP" in json.loads(n.ip(ns, "-j", "link", "show", dev))[0]["flags"]


def v4addrs(n, ns, dev):
    return {f"{a['local']}/{a['prefixlen']}" for a in
            json.loads(n.ip(ns, "-4", "-j", "addr", "show", "dev", dev))[0]["addr_info"]}


class Capture:
    """Every frame on r2's eth0 with its arrival time."""

    def __init__(self, ns: str) -> None:
        with nsutil.entered(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            self.sock.bind(("eth0", 0))
        self.sock.setblocking(False)
        self.frames: list[tuple[float, bytes]] = []

    def poll(self) -> None:
        while True:
            try:
                self.frames.append((time.monotonic(), self.sock.recv(65535)))
            except BlockingIOError:
                return

    def from_vmac(self) -> list[tuple[float, bytes]]:
        self.poll()
        mac = bytes.fromhex(VMAC4.replace(":", ""))
        return [(t, f) for t, f in self.frames if f[6:12] == mac]


def priority_of(frame: bytes) -> int | None:
    if frame[12:14] != b"\x08\x00" or frame[23] != 112:
        return None
    return frame[14 + 20 + 2]


def test_sigkill_hands_over_make_before_break_and_then_goes_silent(lab):
    """No successor here: priority 0 at once, the VIPs kept for the handover bound, then down."""
    n, r1, r2 = lab
    cap = Capture(r2)
    proc, gpid = start_fake(r1, "armed")
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)          # the daemon's whole process group
        nsutil.wait_until(lambda: any(priority_of(f) == 0 for _t, f in cap.from_vmac()), 1)
        t_zero = next(t for t, f in cap.from_vmac() if priority_of(f) == 0)
        assert t_zero - t0 < 0.2                     # priority 0 at once
        time.sleep(BOUND / 3)
        assert up(n, r1, "vmac51.4") and "192.0.2.254/24" in v4addrs(n, r1, "vmac51.4")
        nsutil.wait_until(lambda: not up(n, r1, "vmac51.4"), BOUND + 1)
        t_down = time.monotonic()
        assert BOUND * 0.8 <= t_down - t0 <= BOUND + 1
        nsutil.wait_until(lambda: "198.51.100.254/24" not in v4addrs(n, r1, "eth0"), 1)
        assert "203.0.113.254/24" in v4addrs(n, r1, "eth0")     # forgotten, so left alone
        time.sleep(0.3)
        assert [t for t, _f in cap.from_vmac() if t > t_down + 0.01] == []   # silent after
        nsutil.wait_until(lambda: exited(gpid), 2)   # it did its job and exited by itself
    finally:
        proc.kill()
        proc.wait()


def test_a_successor_ends_the_handover_early(lab):
    n, r1, r2 = lab
    with nsutil.entered(r2):
        successor = PacketSender(socket.if_nametoindex("eth0"))
    import ipaddress
    adv = wire.Advertisement(3, 51, 100, 10, (ipaddress.ip_address("192.0.2.254"),))
    frame = wire.build_frame("02:00:00:00:00:02",
                             wire.build_ip_packet(adv, src="192.0.2.2", dst="224.0.0.18"))
    proc, _gpid = start_fake(r1, "armed")
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.1)
        assert up(n, r1, "vmac51.4")                 # still serving, waiting for a successor
        successor.send(frame)
        nsutil.wait_until(lambda: not up(n, r1, "vmac51.4"), 1)
        assert time.monotonic() - t0 < BOUND
    finally:
        successor.close()
        proc.kill()
        proc.wait()


def test_disarmed_guardian_touches_nothing(lab):
    n, r1, _r2 = lab
    proc, _gpid = start_fake(r1, "disarm")
    try:
        assert proc.stdout.readline().strip() == "disarmed"
        os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(BOUND + 0.3)
        assert up(n, r1, "vmac51.4")
        assert "198.51.100.254/24" in v4addrs(n, r1, "eth0")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGABRT, signal.SIGHUP])
def test_guardian_ignores_systemd_signals(lab, sig):
    """systemd's stop (SIGTERM to the cgroup) and watchdog abort (SIGABRT) must not move it."""
    n, r1, _r2 = lab
    proc, gpid = start_fake(r1, "armed")
    try:
        os.kill(gpid, sig)
        time.sleep(0.3)
        assert not exited(gpid) and up(n, r1, "vmac51.4")
        proc.kill()                                   # the daemon dies: now it acts
        proc.wait()
        nsutil.wait_until(lambda: not up(n, r1, "vmac51.4"), BOUND + 1)
    finally:
        proc.kill()
        proc.wait()


def test_guardian_bad_fd_is_a_message():
    res = subprocess.run([sys.executable, "-m", "vmacd.linux.guardian", "--fd", "987"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2 and "fd 987 is not open" in res.stderr
    assert "Traceback" not in res.stderr


def test_guardian_is_small():
    """It runs isolated, without site-packages and without the daemon's imports."""
    a, b = socket.socketpair()
    from vmacd.linux.guardian import Guardian
    g = Guardian.start()
    try:
        with open(f"/proc/{g.pid}/status") as fh:
            rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
        assert rss_kb < 16 * 1024, rss_kb
    finally:
        g.disarm()
        a.close()
        b.close()
