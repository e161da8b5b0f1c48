"""`vmacd cleanup`: what a daemon and its guardian left when both were SIGKILLed goes away, the
operator's own addresses stay, and it refuses to run while a daemon answers."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import nsutil
import pytest

from vmacd.linux import links as netlink
from vmacd.linux.nft import AcceptModeFilter, OwnerFilter


@pytest.fixture
def box():
    with nsutil.veth_pair() as (n, r1, _r2):
        yield n, r1


def _vmacd(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "vmacd", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


def test_cleanup_removes_leftovers_and_keeps_the_operators(box, tmp_path):
    n, r1 = box
    with nsutil.entered(r1):
        vm = netlink.Links()
        try:
            v = vm.create("lan", "eth0", 51, 4, mode="bridge")
            vm.claim(v, ["192.0.2.254/24"])                       # left UP with the VIP
            vm.claim(vm.ifindex("eth0"), ["198.51.100.9/24"])     # vmac = false leftover
        finally:
            vm.close()
        AcceptModeFilter().add("lan", ["192.0.2.254"])           # nftables leftovers
        OwnerFilter().add("own", "eth0", "02:00:00:00:00:01", ["192.0.2.1", "2001:db8::1"])
    n.ip(r1, "addr", "add", "203.0.113.1/24", "dev", "eth0")      # the operator's
    tables = subprocess.run(["ip", "netns", "exec", r1, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert {"table inet vmacd", "table arp vmacd_owner", "table ip6 vmacd_owner"} <= set(tables)
    res = _vmacd(r1, "cleanup", "-s", str(tmp_path / "none.sock"))
    assert res.returncode == 0, res.stderr
    assert "deleted macvlan vmac51.4" in res.stdout and "198.51.100.9/24" in res.stdout
    links = json.loads(n.ip(r1, "-j", "link", "show"))
    assert [link["ifname"] for link in links if link["ifname"].startswith("vmac")] == []
    left = {f"{a['local']}/{a['prefixlen']}"
            for a in json.loads(n.ip(r1, "-4", "-j", "addr", "show", "dev", "eth0"))[0]["addr_info"]}
    assert left == {"192.0.2.1/24", "203.0.113.1/24"}
    assert "vmacd" not in subprocess.run(["ip", "netns", "exec", r1, "nft", "list", "tables"],
                                         capture_output=True, text=True, check=True).stdout


def test_cleanup_refuses_while_a_daemon_answers(box, tmp_path):
    _n, r1 = box
    path = str(tmp_path / "ctl.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    proc = subprocess.Popen(["ip", "netns", "exec", r1, sys.executable, "-m", "vmacd", "cleanup",
                             "-s", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conn, _ = srv.accept()                     # a fake daemon that answers status
    conn.recv(4096)
    conn.sendall(b'{"ok": true, "instances": []}\n')
    _out, err = proc.communicate(timeout=30)
    conn.close()
    srv.close()
    assert proc.returncode == 2 and "stop it first" in err
