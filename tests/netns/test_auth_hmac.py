"""vmacd's hmac-sha256 authentication between vmacd routers, on a real LAN in the lab.

Same key: one master. A captured advertisement replayed by an attacker is dropped as `replay`, a
forged one as `auth`/`length`, and neither moves the backup. Different keys: each router refuses
the other (`auth`) — the refusal side of the same check.
"""
from __future__ import annotations

import re
import sys
import textwrap

from vmaclab import impls
from vmaclab.attacker import send as forge
from vmaclab.topology import Topology
from vmaclab.util import wait_until

KEY = "lab-key-0123456789abcdef"
REPLAY = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((sys.argv[1], 0))
    s.settimeout(5)
    while True:                                   # one VRRP frame (IPv4 proto 112) from the LAN
        frame = s.recv(2048)
        if frame[12:14] == b"\\x08\\x00" and frame[23] == 112:
            break
    time.sleep(0.3)
    for _ in range(int(sys.argv[2])):
        s.send(frame)
        time.sleep(0.02)
    print("replayed")
""")


def _topo() -> Topology:
    topo = Topology("auth")
    topo.add_lan("lan")
    topo.add_router("r1", ["lan"])
    topo.add_router("r2", ["lan"])
    topo.add_attacker("x1", ["lan"])
    return topo


def _drops(lab, node: str) -> dict[str, float]:
    script = ("import urllib.request;"
              "print(urllib.request.urlopen('http://127.0.0.1:9650/metrics', timeout=5).read().decode())")
    text = lab.run(node, [sys.executable, "-c", script]).stdout
    out = {}
    for m in re.finditer(r'^vmacd_packets_dropped_total\{([^}]*)\} (\S+)$', text, re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("vrrp_instance") == "lan":
            out[labels["reason"]] = float(m.group(2))
    return out


def _pair(lab, keys: tuple[str, str]):
    rs = []
    for node, prio, key in (("r1", 200, keys[0]), ("r2", 100, keys[1])):
        r = impls.get("vmacd")().configure(lab, node, "lan", 51, lab.vip("lan"), prio, 100,
                                           auth={"type": "hmac-sha256", "key": key})
        r.start()
        rs.append(r)
    return rs


def test_same_key_one_master_replay_and_forgery_dropped(lab):
    lb = lab(_topo())
    r1, r2 = _pair(lb, (KEY, KEY))
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5, what="election")
    lb.run("x1", [sys.executable, "-c", REPLAY, lb.ifname("x1", "lan"), "20"])
    forge(lb, "x1", "lan", vrid=51, priority=254, count=10, src=lb.addr("x1", "lan"))
    drops = _drops(lb, "r2")
    assert drops["replay"] >= 20, drops
    assert drops["auth"] + drops["length"] >= 10, drops
    assert (r1.state(), r2.state()) == ("master", "backup")
    assert [s for _t, s in r2.history].count("master") == 0


def test_different_keys_refuse_each_other(lab):
    lb = lab(_topo())
    r1, r2 = _pair(lb, (KEY, "another-key-0123456789"))
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "master"), 5, what="both master")
    wait_until(lambda: _drops(lb, "r2").get("auth", 0) >= 3, 3, what="auth drops on r2")
    assert _drops(lb, "r1").get("auth", 0) >= 1
