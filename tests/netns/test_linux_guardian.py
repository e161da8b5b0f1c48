"""vmacd.linux.guardian: after a SIGKILL of the daemon (its whole process group), the vMAC it held
up goes DOWN within ~50 ms and its vmac=false VIPs are removed; a disarmed guardian leaves all."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import nsutil
import pytest

from vmacd.linux import netlink

FAKE_DAEMON = """
import sys, time
from vmacd.linux import netlink
from vmacd.linux.guardian import Guardian
m = netlink.VmacManager()
v = m.create("lan", "eth0", 51, 4)
m.claim(v, ["192.0.2.254/24"])
parent = m.ifindex("eth0")
m.claim(parent, ["198.51.100.254/24"])
g = Guardian.start()
g.own(v.ifindex)
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
    with nsutil.veth_pair() as (n, r1, _r2):
        n.ip(r1, "addr", "add", "203.0.113.254/24", "dev", "eth0")   # the operator's
        yield n, r1


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


def v4addrs(n, ns, dev):
    return {f"{a['local']}/{a['prefixlen']}" for a in
            json.loads(n.ip(ns, "-4", "-j", "addr", "show", "dev", dev))[0]["addr_info"]}


def test_guardian_downs_vmac_within_50ms_of_sigkill(lab):
    n, r1 = lab
    proc, gpid = start_fake(r1, "armed")
    try:
        with nsutil.entered(r1):
            watcher = netlink.LinkWatcher()
        idx = int(json.loads(n.ip(r1, "-j", "link", "show", "vmac51.4"))[0]["ifindex"])
        assert watcher.state(idx) is True
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)          # the daemon's whole process group
        down_at = None
        while down_at is None and time.monotonic() - t0 < 2:
            select.select([watcher], [], [], 0.5)
            for e in watcher.read():
                if isinstance(e, netlink.LinkChanged) and e.ifindex == idx and not e.up:
                    down_at = time.monotonic()
        watcher.close()
        assert down_at is not None, "the vMAC stayed up"
        took_ms = (down_at - t0) * 1000
        print(f"vMAC down {took_ms:.1f} ms after SIGKILL")
        assert took_ms < 50
        nsutil.wait_until(lambda: "198.51.100.254/24" not in v4addrs(n, r1, "eth0"), 1)
        assert "203.0.113.254/24" in v4addrs(n, r1, "eth0")     # forgotten, so left alone
        # the guardian survived the group SIGKILL, did its job and exited by itself
        nsutil.wait_until(lambda: exited(gpid), 2)
    finally:
        proc.kill()
        proc.wait()


def test_disarmed_guardian_touches_nothing_and_ignores_sigterm(lab):
    n, r1 = lab
    proc, _gpid = start_fake(r1, "disarm")
    try:
        assert proc.stdout.readline().strip() == "disarmed"
        os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
        info = json.loads(n.ip(r1, "-j", "link", "show", "vmac51.4"))[0]
        assert "UP" in info["flags"]
        assert "198.51.100.254/24" in v4addrs(n, r1, "eth0")
    finally:
        proc.kill()
        proc.wait()


def test_guardian_ignores_sigterm(lab):
    n, r1 = lab
    proc, gpid = start_fake(r1, "armed")
    try:
        os.kill(gpid, signal.SIGTERM)                 # e.g. systemd KillMode=control-group
        time.sleep(0.3)
        assert os.path.exists(f"/proc/{gpid}")
        assert "UP" in json.loads(n.ip(r1, "-j", "link", "show", "vmac51.4"))[0]["flags"]
        proc.kill()                                   # the daemon dies: now it acts
        proc.wait()
        nsutil.wait_until(lambda: "UP" not in json.loads(
            n.ip(r1, "-j", "link", "show", "vmac51.4"))[0]["flags"], 1)
    finally:
        proc.kill()
        proc.wait()


def test_guardian_bad_fd_is_a_message():
    res = subprocess.run([sys.executable, "-m", "vmacd.linux.guardian", "--fd", "987"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2 and "fd 987 is not open" in res.stderr
    assert "Traceback" not in res.stderr
