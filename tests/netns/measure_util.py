"""A tiny LAN for the measurement tests: bridge namespace + two routers + a client, built with `ip`.

Names carry a per-run prefix ``vm<5 hex>-``; only namespaces this module created are ever deleted.
Addresses: r1 192.0.2.1, r2 192.0.2.2, client 192.0.2.100, VIP 192.0.2.254 (all /24).  Each router has
a macvlan ``vip0`` with the VRRP vMAC 00:00:5e:00:01:33 (down until the test brings it up).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

VMAC = "00:00:5e:00:01:33"
VIP = "192.0.2.254"
ADDRS = {"r1": "192.0.2.1", "r2": "192.0.2.2", "c": "192.0.2.100"}
NODE_MACS = {"r1": "02:00:00:00:00:01", "r2": "02:00:00:00:00:02", "c": "02:00:00:00:00:64"}


def sh(*argv: str, check: bool = True) -> str:
    """Run a command; returns stdout; raises with stderr on failure when ``check``."""
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {res.returncode}: {res.stderr.strip()}")
    return res.stdout


class MiniLan:
    """Bridge ``br0`` in namespace ``<prefix>br`` with ports ``p-r1``, ``p-r2``, ``p-c``."""

    def __init__(self) -> None:
        self.prefix = "vm" + os.urandom(3).hex()[:5] + "-"
        self.created: list[str] = []

    def ns(self, node: str) -> str:
        """Namespace name of ``node`` (``br``, ``r1``, ``r2``, ``c``)."""
        return self.prefix + node

    def _add_ns(self, node: str) -> None:
        sh("ip", "netns", "add", self.ns(node))
        self.created.append(self.ns(node))
        sh("ip", "-n", self.ns(node), "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.ns(node), "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")

    def up(self) -> MiniLan:
        """Create everything; on any error, remove what was created and re-raise."""
        try:
            self._add_ns("br")
            br = self.ns("br")
            # br_netfilter (loaded on this host) would validate/drop frames at the bridge: plain L2 here
            sh("ip", "netns", "exec", br, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
               "net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-arptables=0", check=False)
            sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", br, "link", "set", "br0", "up")
            for node in ("r1", "r2", "c"):
                self._add_node(node)
        except BaseException:
            self.down()
            raise
        return self

    def _add_node(self, node: str) -> None:
        self._add_ns(node)
        ns, br, port = self.ns(node), self.ns("br"), "p-" + node
        sh("ip", "-n", ns, "link", "add", "eth0", "address", NODE_MACS[node], "type", "veth",
           "peer", "name", port, "netns", br)
        sh("ip", "-n", br, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "addr", "add", ADDRS[node] + "/24", "dev", "eth0")
        if node.startswith("r"):
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1",
               "net.ipv4.conf.all.arp_announce=2")
            sh("ip", "-n", ns, "link", "add", "vip0", "link", "eth0", "address", VMAC, "type", "macvlan",
               "mode", "bridge")

    def down(self) -> None:
        """Delete the namespaces this instance created (their veths and bridge go with them)."""
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)
        self.created.clear()

    def vip_up(self, node: str) -> None:
        """Give ``node`` the VIP on its vMAC macvlan."""
        ns = self.ns(node)
        sh("ip", "-n", ns, "link", "set", "vip0", "up")
        sh("ip", "-n", ns, "addr", "add", VIP + "/32", "dev", "vip0")

    def vip_down(self, node: str) -> int:
        """Take ``node``'s vMAC interface (and the VIP) down; returns monotonic ns when done."""
        sh("ip", "-n", self.ns(node), "link", "set", "vip0", "down")
        return time.monotonic_ns()


_SEND_SCRIPT = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
gap = float(sys.argv[2])
for i, h in enumerate(sys.argv[3:]):
    if i and gap:
        time.sleep(gap)
    t = time.monotonic_ns()
    s.send(bytes.fromhex(h))
    print(t, time.monotonic_ns(), flush=True)
"""


def send_frames_timed(ns: str, ifname: str, frames: list[bytes], gap_s: float = 0.0) -> list[tuple[int, int]]:
    """Send raw Ethernet ``frames`` from ``ifname`` in ``ns``; returns (before, after) send() per frame
    (monotonic ns): the frame left between the two."""
    out = sh("ip", "netns", "exec", ns, sys.executable, "-c", _SEND_SCRIPT, ifname, str(gap_s),
             *(f.hex() for f in frames))
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines())]


def mac_bytes(mac: str) -> bytes:
    """'aa:bb:..' -> 6 bytes."""
    return bytes.fromhex(mac.replace(":", ""))


def garp_frame(mac: str, ip: str) -> bytes:
    """Gratuitous ARP request (broadcast, sender = target = ``ip``) from ``mac``."""
    m, a = mac_bytes(mac), bytes(int(x) for x in ip.split("."))
    return (b"\xff" * 6 + m + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + m + a + b"\x00" * 6 + a
            + b"\x00" * 18)


def vrrp_frame(mac: str, src_ip: str, vrid: int, prio: int, ttl: int = 255) -> bytes:
    """Minimal VRRPv3 advertisement (checksums zero: the observer does not verify them)."""
    sip = bytes(int(x) for x in src_ip.split("."))
    vrrp = bytes([0x31, vrid, prio, 1, 0x00, 10, 0, 0]) + bytes(int(x) for x in VIP.split("."))
    ip = bytearray([0x45, 0, 0, 20 + len(vrrp), 0, 0, 0, 0, ttl, 112, 0, 0]) + sip + bytes([224, 0, 0, 18])
    words = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, 20, 2))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    ip[10:12] = (~words & 0xFFFF).to_bytes(2, "big")
    return b"\x01\x00\x5e\x00\x00\x12" + mac_bytes(mac) + b"\x08\x00" + bytes(ip) + vrrp


def wait_for(pred, timeout_s: float, what: str, step_s: float = 0.01):
    """Poll ``pred()`` until it returns a truthy value or ``timeout_s`` passes (then AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        val = pred()
        if val:
            return val
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(step_s)
