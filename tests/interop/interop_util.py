"""Interop helpers: vmacd beside keepalived 2.2.7 / FRR 8.4.4 vrrpd on one lab LAN.

The lab's Router classes cover the common knobs; what they cannot say (keepalived auth, its IPv6
VIP list, raw keywords) is added by a small test-local subclass that only appends to the config
the lab renders. vmacd's Router takes ``auth={"type": ..., "key": ...}`` itself.

Helpers read *real* behaviour: daemon state (control socket / notify fifo / vtysh), vmacd's
Prometheus endpoint inside the node's namespace, frames captured on the LAN bridge, and the
client's ARP / ND view of the VIP.
"""
from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vmaclab import impls
from vmaclab.impls.base import Router
from vmaclab.lab import Lab
from vmaclab.util import wait_until

VRID = 51
KEEPALIVED = "/usr/sbin/keepalived"


# --------------------------------------------------------------------------- the interop matrix

def row(peer: str, family: int, mode: str, version: str, config: str, order: str, masters: int,
        checks: str) -> pytest.MarkDecorator:
    """A row of docs/interop.md's matrix: what the marked test shows (``masters``: 1, or 2 when the
    test proves a split brain and how it shows), written to the junit XML by conftest.py and turned
    into the doc by tools/interop_doc.py."""
    if peer not in PEERS or family not in (4, 6) or mode not in ("multicast", "unicast") \
            or masters not in (1, 2) or order not in ORDERS:
        raise ValueError(f"bad matrix row: {peer=} {family=} {mode=} {masters=} {order=}")
    return pytest.mark.matrix(peer=peer, family=family, mode=mode, version=version, config=config,
                              order=order, masters=masters, checks=checks)


PEERS = ("keepalived", "frr")
ORDERS = ("vmacd higher", "peer higher")


# --------------------------------------------------------------------------- router subclasses

class KeepalivedX(impls.get("keepalived")):
    """keepalived with extra instance keywords from ``configure(..., ka_auth=(type, pass),
    ka_instance=[lines], ka_global=[lines])`` (the VIP list and unicast peers are the lab's own
    ``vips=[...]`` and ``unicast_peers=[...]``)."""

    def render(self) -> str:
        text = super().render()
        x = self.cfg.extra
        if "ka_global" in x:
            text = text.replace("}\n", "".join(f"  {line}\n" for line in x["ka_global"]) + "}\n", 1)
        extra = list(x.get("ka_instance", ()))
        if "ka_auth" in x:
            kind, pw = x["ka_auth"]
            extra += ["authentication {", f"  auth_type {kind}", f"  auth_pass {pw}", "}"]
        if extra:
            text = text.replace("  virtual_ipaddress {", "".join(f"  {line}\n" for line in extra)
                                + "  virtual_ipaddress {", 1)
        return text


def make(kind: str) -> Router:
    """A fresh Router of *kind* ("vmacd" | "keepalived" | "frr")."""
    return {"vmacd": impls.get("vmacd"), "keepalived": KeepalivedX, "frr": impls.get("frr")}[kind]()


# --------------------------------------------------------------------------- observations

def elect(*pairs: tuple[Router, str], timeout: float = 6.0) -> float:
    """Wait until every router reports its wanted state; returns the seconds it took."""
    import time
    t0 = time.monotonic()
    wait_until(lambda: all(r.state() == want for r, want in pairs), timeout,
               what="states " + ", ".join(f"{r.name}@{r.node}={want}" for r, want in pairs))
    return time.monotonic() - t0


def stays(pairs: list[tuple[Router, str]], seconds: float) -> None:
    """Assert the states hold for *seconds* (polled; fails at the first deviation)."""
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = [(r.node, r.state()) for r, _ in pairs]
        assert got == [(r.node, w) for r, w in pairs], got
        time.sleep(0.05)


def metrics(lb: Lab, node: str, port: int = 9650) -> dict[str, float]:
    """vmacd's Prometheus text from inside *node*'s namespace as {series: value}."""
    cp = lb.run(node, ["curl", "-fsS", "--max-time", "2", f"http://127.0.0.1:{port}/metrics"])
    out: dict[str, float] = {}
    for line in cp.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, val = line.rpartition(" ")
            out[name] = float(val)
    return out


def metric(m: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the series *name* whose labels include *labels*."""
    tot = 0.0
    for series, val in m.items():
        base, _, rest = series.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            tot += val
    return tot


def arping_mac(lb: Lab, client: str, ip: str) -> str | None:
    """The MAC that answers ARP for *ip* seen from *client* (None when nobody answers)."""
    cp = lb.run(client, ["arping", "-c", "2", "-w", "2", "-I", "eth0", ip], check=False)
    macs = {m.lower() for m in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", cp.stdout)}
    assert len(macs) <= 1, f"{ip} answered from several MACs: {sorted(macs)}"
    return macs.pop() if macs else None


def ndisc_mac(lb: Lab, client: str, ip: str, timeout: float = 2.0) -> str | None:
    """The MAC *client* resolves IPv6 *ip* to by Neighbor Discovery (a UDP datagram triggers the NS;
    the lab has no ping binary). None when nobody answers within *timeout*."""
    from vmaclab.observe import neigh_mac
    code = ("import socket,sys; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
            "s.sendto(b'nd', (sys.argv[1], 9))")
    lb.run(client, ["ip", "-6", "neigh", "flush", "to", ip], check=False)
    lb.run(client, [sys.executable, "-c", code, ip])
    try:
        return wait_until(lambda: neigh_mac(lb.ns(client), ip), timeout, what=f"ND for {ip}")
    except TimeoutError:
        return None


def ping_ok(lb: Lab, client: str, ip: str, count: int = 3) -> bool:
    """Does *ip* answer ICMP echo from *client* (IPv4 or IPv6)? At least one reply counts."""
    cp = lb.run(client, ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", ip], check=False)
    return cp.returncode == 0


def log_lines(r: Router, pattern: str) -> list[str]:
    """Lines of the router's own log matching *pattern* (regex)."""
    names = {"keepalived": ["keepalived.log"], "vmacd": ["vmacd.log"], "frr": ["vrrpd.log", "vrrpd.out"]}
    text = ""
    for n in names[r.name]:
        try:
            text += (r.dir / n).read_text(errors="replace")
        except OSError:
            pass
    return [line for line in text.splitlines() if re.search(pattern, line)]


class Tcpdump:
    """tcpdump -w on *node*'s port of the LAN bridge (frames that node sent are "in" there)."""

    def __init__(self, lb: Lab, path: Path, node: str,
                 expr: str = "ip proto 112 or ip proto 51 or ip6") -> None:
        self.path, err = path, path.with_suffix(".err")
        with err.open("wb") as fh:
            self.proc = subprocess.Popen(["ip", "netns", "exec", lb.bridge_ns("lan"), "tcpdump", "-i",
                                          lb.bridge_port(node, "lan"), "-Q", "in", "-U",
                                          "--immediate-mode", "-n", "-w", str(path), expr],
                                         stdout=subprocess.DEVNULL, stderr=fh)
        wait_until(lambda: "listening on" in err.read_text() or self.proc.poll() is not None, 5.0,
                   what="tcpdump ready")
        assert self.proc.poll() is None, err.read_text()

    def stop(self) -> list:
        """Stop the capture; return scapy packets."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        from scapy.utils import rdpcap
        for layer in ("inet6", "l2", "vrrp"):      # loads the dissectors rdpcap needs
            importlib.import_module(f"scapy.layers.{layer}")
        return list(rdpcap(str(self.path)))


def keepalived_knows(keyword: str) -> bool:
    """Whether this keepalived build accepts *keyword* inside a vrrp_instance (config test)."""
    conf = Path(f"/tmp/vmacd-interop-kwcheck-{os.getpid()}.conf")
    conf.write_text("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  priority 100\n"
                    f"  {keyword}\n  virtual_ipaddress {{\n    192.0.2.1/24\n  }}\n}}\n")
    try:
        cp = subprocess.run([KEEPALIVED, "-t", "-l", "-f", str(conf)], check=False, capture_output=True,
                            text=True, timeout=10)
    finally:
        conf.unlink(missing_ok=True)
    return f"Unknown keyword '{keyword}'" not in cp.stdout + cp.stderr
