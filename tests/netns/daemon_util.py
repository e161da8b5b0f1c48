"""Helpers of the vmacd daemon tests (tests/netns/test_daemon_*.py): start vmacd routers in a
lab, read what the kernel holds (links, addresses, neighbours, bridge FDB), capture the LAN.

Everything here reads real kernel state (`ip -j`, `bridge -j`) or real frames (vmaclab.observe);
nothing asks the daemon what it believes unless the name says so (`state`, `status`).
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from failover_bound import failover_bound_s
from vmaclab import impls
from vmaclab.lab import Lab, lab_namespaces
from vmaclab.observe import Observer
from vmaclab.prober import EchoServer, Prober
from vmaclab.util import kill, run, wait_until

VRID = 51
VMAC4 = f"00:00:5e:00:01:{VRID:02x}"
VMAC6 = f"00:00:5e:00:02:{VRID:02x}"
ADVERT_MS = 100
VMACCTL = str(Path(sys.executable).with_name("vmacctl"))
__all__ = ["failover_bound_s"]       # tests/failover_bound.py, for the daemon tests' imports


# ------------------------------------------------------------------ labs and routers
class Fleet:
    """vmacd routers started by one test; `close()` stops them (SIGTERM, then SIGKILL)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.routers: list = []
        self.helpers: list = []       # echo servers, probers, observers

    def start(self, node: str, priority: int, advert_ms: int = ADVERT_MS, family: int = 4,
              **kw: object):
        r = configure(self.lab, node, priority, advert_ms, family, **kw)
        r.start()
        self.routers.append(r)
        return r

    def elect(self, nodes_prios: list[tuple[str, int]], master: str, timeout: float = 10.0,
              **kw: object) -> dict:
        """Start every (node, priority); wait until *master* is master and the rest backup."""
        rs = {n: self.start(n, p, **kw) for n, p in nodes_prios}
        want = {n: "master" if n == master else "backup" for n in rs}
        wait_until(lambda: {n: r.state() for n, r in rs.items()} == want, timeout,
                   what=f"election of {master}")
        return rs

    def echo(self, nodes: list[str]) -> None:
        for n in nodes:
            self.helpers.append(EchoServer.start(self.lab.ns(n), n))

    def close(self) -> None:
        for h in self.helpers:        # teardown: lab.down() kills whatever is left anyway
            with contextlib.suppress(Exception):
                h.proc.kill() if isinstance(h, (Observer, Prober)) else h.stop()
        for r in self.routers:            # signal all first: the graceful stops overlap
            for pid in r.term_pids():
                kill(pid, signal.SIGTERM)
        for r in self.routers:
            with contextlib.suppress(Exception):
                r.stop()
            r.crash_kill()                # a guardian that outlived its daemon


@pytest.fixture
def fleet(request) -> Iterator[Fleet]:
    """A fresh lab (the module's TOPO, default "pair"; a lab is up in ~0.2 s) and its routers."""
    lab = Lab(getattr(request.module, "TOPO", "pair")).up()
    f = Fleet(lab)
    try:
        yield f
    finally:
        try:
            f.close()
        finally:
            lab.down()
            assert not lab_namespaces(lab.prefix), f"namespaces of {lab.prefix} left behind"


def configure(lab: Lab, node: str, priority: int, advert_ms: int = ADVERT_MS, family: int = 4,
              **kw: object):
    return impls.get("vmacd")().configure(lab, node, "lan", VRID, lab.vip("lan", family), priority,
                                          advert_ms, **kw)


# ------------------------------------------------------------------ kernel state
def links(lab: Lab, node: str) -> list[dict]:
    return json.loads(lab.run(node, ["ip", "-j", "-d", "link", "show"]).stdout or "[]")


def vmacd_links(lab: Lab, node: str) -> list[dict]:
    """macvlans on *node* (any: vmacd's or a stray one)."""
    return [lk for lk in links(lab, node) if lk.get("linkinfo", {}).get("info_kind") == "macvlan"]


def up_links_with_mac(lab: Lab, node: str, mac: str) -> list[str]:
    """Names of links on *node* that carry *mac* and are administratively UP."""
    return [lk["ifname"] for lk in links(lab, node)
            if lk.get("address", "").lower() == mac and "UP" in lk.get("flags", [])]


def addresses(lab: Lab, node: str) -> list[str]:
    out = json.loads(lab.run(node, ["ip", "-j", "addr", "show"]).stdout or "[]")
    return [a["local"] for lk in out for a in lk.get("addr_info", [])]


def vip_holders(lab: Lab, vip: str) -> list[str]:
    return [n for n in lab.topo.routers() if vip in addresses(lab, n)]


def fdb_ports(lab: Lab, mac: str) -> list[str]:
    """Bridge ports the LAN bridge has learned *mac* on (not permanent entries)."""
    out = json.loads(run(["bridge", "-n", lab.bridge_ns("lan"), "-j", "fdb", "show", "br",
                          lab.bridge("lan")]).stdout or "[]")
    return [e["ifname"] for e in out if e.get("mac", "").lower() == mac
            and "permanent" not in e.get("state", "")]


def neigh(lab: Lab, node: str, ip: str) -> dict | None:
    out = json.loads(lab.run(node, ["ip", "-j", "neigh", "show", "to", ip]).stdout or "[]")
    return next((e for e in out if e.get("dst") == ip), None)


def node_mac(lab: Lab, node: str) -> str:
    out = json.loads(lab.run(node, ["ip", "-j", "link", "show", lab.ifname(node, "lan")]).stdout)
    return out[0]["address"].lower()


def port(lab: Lab, node: str) -> str:
    return lab.bridge_port(node, "lan")


# ------------------------------------------------------------------ capture and probes
def capture(fleet: Fleet, name: str = "lan") -> Observer:
    """Capture every port of the LAN bridge (frames and FDB events)."""
    lab = fleet.lab
    ports = [port(lab, n) for n in lab.topo.members("lan")]
    obs = Observer.start(lab.bridge_ns("lan"), ports, str(lab.rundir / f"{name}-{time.time_ns()}.jsonl"),
                         fdb_bridge=lab.bridge("lan"))
    fleet.helpers.append(obs)
    return obs


def probe(fleet: Fleet, client: str = "c1", interval_ms: float = 5.0, family: int = 4) -> Prober:
    lab = fleet.lab
    p = Prober.start(lab.ns(client), lab.vip("lan", family), interval_ms=interval_ms,
                     out_path=str(lab.rundir / f"probes-{time.time_ns()}.jsonl"))
    fleet.helpers.append(p)
    return p


def sent_from(events: list[dict], port_name: str, mac: str, after_ns: int = 0,
              before_ns: int | None = None) -> list[dict]:
    """Frames the node behind *port_name* sent with source *mac* in [after_ns, before_ns)."""
    return [e for e in events if e.get("type") == "frame" and e["dir"] == "rx"
            and e["ifname"] == port_name and e["src_mac"] == mac and e["t_ns"] >= after_ns
            and (before_ns is None or e["t_ns"] < before_ns)]


def arp_requests_for(events: list[dict], port_name: str, ip: str, after_ns: int) -> list[dict]:
    """ARP requests for *ip* sent by the node behind *port_name* after *after_ns*."""
    return [e for e in events if e.get("type") == "frame" and e["kind"] == "arp"
            and e["dir"] == "rx" and e["ifname"] == port_name and e["op"] == 1
            and e["dst_ip"] == ip and not e["gratuitous"] and e["t_ns"] >= after_ns]


def sleep_observing(seconds: float) -> None:
    """Let time pass while a capture records (a window of observation, not a wait for a condition)."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, interval=0.05, what="observation window")


def metrics_text(lab: Lab, node: str, listen: str = "127.0.0.1:9650") -> str:
    return lab.run(node, ["curl", "-fsS", "--max-time", "5", f"http://{listen}/metrics"]).stdout


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of *name* whose labels include *labels*."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, lbl = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in lbl for k, v in labels.items()):
            total += float(value)
            found = True
    return total if found else 0.0


def vmacctl(lab: Lab, node: str, r, *args: str, check: bool = True):
    """The real `vmacctl -s SOCKET ...` inside *node*'s namespace."""
    return lab.run(node, [VMACCTL, "-s", str(r.socket_path), *args], check=check)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def observe_guardians(routers: list, seconds: float) -> list[str]:
    """Sample each router's `pids()` for *seconds* (an observation window); returns the wrong
    "guardian" picks (a pid that is not `python -m vmacd.linux.guardian`, e.g. a track script)."""
    wrong: list[str] = []
    end = time.monotonic() + seconds

    def sample() -> bool:
        for r in routers:
            g = r.pids().get("guardian")
            if g is None or "vmacd.linux.guardian" not in cmdline(g):
                wrong.append(f"{r.node}: {g} {cmdline(g)!r}")
        return time.monotonic() >= end
    wait_until(sample, seconds + 5, interval=0.005, what="guardian observation window")
    return wrong


_UDP_ASK = r"""
import socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.3)
for _ in range(10):
    s.sendto(b"ask", (ip, port))
    try:
        print(s.recvfrom(256)[0].decode(errors="replace").split("|")[-1]); break
    except TimeoutError:
        continue
else:
    sys.exit("no answer from %s" % ip)
"""


def udp_ask(lab: Lab, node: str, ip: str, port_no: int = 7007) -> str:
    """One UDP exchange with the echo server behind *ip* (from *node*); returns who answered."""
    return lab.run(node, [sys.executable, "-c", _UDP_ASK, ip, str(port_no)]).stdout.strip()
