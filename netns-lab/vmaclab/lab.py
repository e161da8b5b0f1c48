"""Build a Topology in network namespaces and tear it down, also after a crash (by prefix).

Kernel objects of one run (prefix ``vlXXXXX-``):

* node namespace ``{prefix}{node}`` holding ``eth0``, ``eth1``... (veth ends, addresses, daemons);
* bridge namespace ``{prefix}s-{lan}`` per LAN holding bridge ``br-{lan}`` and the ports
  ``{node}-{ifname}`` (the other veth ends), plus the fault nftables table;
* nothing in the root namespace: deleting the namespaces removes every veth, bridge and nft table.

Files of the run live under ``/run/vmaclab/{prefix}/``: ``state.json`` (topology, owner pid) and one
work directory per node (configs, pid files, sockets, logs).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from .topology import Topology, resolve
from .util import (
    PREFIX_RE,
    RUN_ROOT,
    LabError,
    check_prefix,
    kill,
    log,
    new_prefix,
    pid_alive,
    run,
    wait_until,
)

FRR_TMP = "/var/tmp/frr"
_ROUTER_SYSCTLS = ("net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1",
                   "net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.default.arp_announce=2")
_NODE_SYSCTLS = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                 "net.ipv6.conf.all.dad_transmits=0", "net.ipv6.conf.default.dad_transmits=0")
_BRIDGE_SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
# With br_netfilter loaded (Docker, k8s hosts) a new namespace gets bridge-nf-call-*=1: bridged
# frames then pass iptables and the bridge silently drops IPv4 frames with a bad header checksum
# (the lab's forge/flood send such frames on purpose). Off in every bridge namespace; `-e` skips
# keys that do not exist (br_netfilter not loaded).
_BRIDGE_NF_SYSCTLS = ("net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0",
                      "net.bridge.bridge-nf-call-arptables=0")


class Lab:
    """A running topology. Use as a context manager: ``with Lab(topo) as lab: ...``."""

    def __init__(self, topo: Topology | str | Path, prefix: str | None = None,
                 run_root: Path = RUN_ROOT) -> None:
        self.topo = topo if isinstance(topo, Topology) else resolve(topo)
        self.prefix = check_prefix(prefix) if prefix else new_prefix()
        self.rundir = Path(run_root) / self.prefix
        self._procs: list[subprocess.Popen] = []

    # -- names ---------------------------------------------------------------------------------
    def ns(self, node: str) -> str:
        """Namespace of *node*."""
        if node not in self.topo.nodes:
            raise KeyError(f"unknown node {node!r}")
        return f"{self.prefix}{node}"

    def bridge_ns(self, lan: str) -> str:
        """Namespace holding *lan*'s bridge."""
        if lan not in self.topo.lans:
            raise KeyError(f"unknown lan {lan!r}")
        return f"{self.prefix}s-{lan}"

    def bridge(self, lan: str) -> str:
        """Bridge device name (inside ``bridge_ns(lan)``)."""
        return f"br-{lan}"

    def ifname(self, node: str, lan: str) -> str:
        """Interface of *node* on *lan* inside ``ns(node)``."""
        return self.topo.ifname(node, lan)

    def bridge_port(self, node: str, lan: str) -> str:
        """The veth end of *node*'s link to *lan*, enslaved to the bridge in ``bridge_ns(lan)``."""
        return f"{node}-{self.ifname(node, lan)}"

    def addr(self, node: str, lan: str, family: int = 4) -> str:
        """Address (without length) of *node* on *lan*."""
        return self.topo.addr(node, lan, family)

    def vip(self, lan: str, family: int = 4) -> str:
        """Conventional virtual IP of *lan* (host .254)."""
        return self.topo.vip(lan, family)

    def namespaces(self) -> list[str]:
        """Every namespace this lab creates (nodes first, then bridges)."""
        return [self.ns(n) for n in self.topo.nodes] + [self.bridge_ns(lan) for lan in self.topo.lans]

    def workdir(self, node: str) -> Path:
        """Per-run directory for *node*'s files (created on demand)."""
        path = self.rundir / node
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- processes -----------------------------------------------------------------------------
    def run(self, node: str, argv: Sequence[str], check: bool = True,
            timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside *node*'s namespace and wait for it."""
        return run(["ip", "netns", "exec", self.ns(node), *argv], check=check, timeout=timeout)

    def popen(self, node: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Start *argv* in *node*'s namespace; the process is killed by ``down()`` at the latest."""
        ns = kw.pop("ns", None) or self.ns(node)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self._procs.append(proc)
        return proc

    # -- life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Lab:
        """Create namespaces, bridges, veths and addresses; on any failure tear down and raise."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        self._write_state("creating")
        try:
            for lan in self.topo.lans:
                self._make_bridge(lan)
            for node in self.topo.nodes:
                self._make_node(node)
        except BaseException:
            self.down()
            raise
        self._write_state("up")
        log.info("lab %s up: %s", self.prefix, ", ".join(self.namespaces()))
        return self

    def down(self) -> None:
        """Stop every process of the lab, delete its namespaces and its run directory."""
        pids = [p.pid for p in self._procs]
        cleanup(self.prefix)
        for proc in self._procs:
            if proc.poll() is None:
                kill(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("process %d of lab %s did not exit", proc.pid, self.prefix)
        remove_frr_crashdirs(pids)
        self._procs.clear()

    def detach(self) -> None:
        """Leave the lab running after this process exits (``vmac-lab up``); ``down`` removes it."""
        self._procs.clear()
        self._write_state("up", owner=None)

    # -- building blocks -----------------------------------------------------------------------
    def _write_state(self, status: str, owner: int | bool | None = True) -> None:
        state = {"prefix": self.prefix, "status": status, "topology": self.topo.to_dict(),
                 "owner_pid": os.getpid() if owner is True else owner,
                 "namespaces": self.namespaces(), "created": time.time()}
        tmp = self.rundir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.rundir / "state.json")

    def _make_bridge(self, lan: str) -> None:
        ns, br = self.bridge_ns(lan), self.bridge(lan)
        run(["ip", "netns", "add", ns])
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", *_BRIDGE_SYSCTLS])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "add", br, "type", "bridge", "mcast_snooping", "0",
             "forward_delay", "0", "stp_state", "0"])
        run(["ip", "-n", ns, "link", "set", br, "up"])
        run(["ip", "netns", "exec", ns, "sysctl", "-e", "-qw", *_BRIDGE_NF_SYSCTLS])

    def _make_node(self, node: str) -> None:
        ns, kind = self.ns(node), self.topo.nodes[node].kind
        run(["ip", "netns", "add", ns])
        sysctls = _NODE_SYSCTLS + (_ROUTER_SYSCTLS if kind == "router" else ())
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", *sysctls])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for lan in self.topo.nodes[node].lans:
            self._make_link(node, lan)

    def _make_link(self, node: str, lan: str, addresses: bool = True) -> None:
        ns, dev = self.ns(node), self.ifname(node, lan)
        port, bns = self.bridge_port(node, lan), self.bridge_ns(lan)
        run(["ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port,
             "netns", bns])
        run(["ip", "-n", bns, "link", "set", port, "master", self.bridge(lan), "up"])
        for fam in (4, 6) if addresses else ():
            cidr = f"{self.addr(node, lan, fam)}/{self.topo.prefixlen(lan, fam)}"
            extra = ["nodad"] if fam == 6 else []
            run(["ip", "-n", ns, f"-{fam}", "addr", "add", cidr, "dev", dev, *extra])
        run(["ip", "-n", ns, "link", "set", dev, "up"])

    def unplug(self, node: str, lan: str) -> None:
        """Delete *node*'s interface on *lan* (both veth ends), as a NIC driver unload does."""
        run(["ip", "-n", self.ns(node), "link", "del", self.ifname(node, lan)])

    def replug(self, node: str, lan: str, addresses: bool = True) -> None:
        """Create *node*'s interface on *lan* again: same name, a new ifindex, UP, with its
        addresses (or none: the caller adds them, as a network manager would, later)."""
        self._make_link(node, lan, addresses)


# -- cleanup by prefix (works without a Lab object, e.g. after SIGKILL) ---------------------------
def lab_namespaces(prefix: str | None = None) -> list[str]:
    """Namespaces named like a lab's (of *prefix* only, when given)."""
    try:
        names = sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []
    if prefix:
        return [n for n in names if n.startswith(prefix)]
    return [n for n in names if PREFIX_RE.match(n[:8])]


def ns_pids(ns: str) -> list[int]:
    """Pids of the processes running in namespace *ns*."""
    cp = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in cp.stdout.split() if p.isdigit()]


def cleanup(prefix: str, run_root: Path = RUN_ROOT) -> list[str]:
    """Kill every process in the namespaces of *prefix*, delete them and the run directory.

    Only objects whose name starts with *prefix* are touched. Returns the deleted namespaces.
    """
    check_prefix(prefix)
    spaces = lab_namespaces(prefix)
    killed: list[int] = []
    for ns in spaces:
        for pid in ns_pids(ns):
            kill(pid, signal.SIGCONT)
            kill(pid, signal.SIGKILL)
            killed.append(pid)
    for ns in spaces:
        try:
            wait_until(lambda ns=ns: not [p for p in ns_pids(ns) if pid_alive(p)], 5.0,
                       what=f"processes of {ns} to die")
        except TimeoutError as exc:
            log.warning("%s", exc)
        cp = run(["ip", "netns", "del", ns], check=False)
        if cp.returncode != 0 and ns in lab_namespaces(prefix):
            raise LabError(f"cannot delete namespace {ns}: {cp.stderr.strip()}")
    remove_frr_crashdirs(killed)
    shutil.rmtree(Path(run_root) / prefix, ignore_errors=True)
    return spaces


def remove_frr_crashdirs(pids: Sequence[int]) -> None:
    """Remove FRR's per-process log buffers (/var/tmp/frr/DAEMON.PID) of killed lab daemons.

    FRR always creates them (no option moves them); a clean exit removes them, a SIGKILL does not.
    Only directories whose pid is one of *pids* (processes of this lab) are touched.
    """
    for pid in pids:
        for path in Path(FRR_TMP).glob(f"*.{pid}"):
            shutil.rmtree(path, ignore_errors=True)


def read_state(prefix: str, run_root: Path = RUN_ROOT) -> dict | None:
    """The state.json of *prefix*, or None."""
    try:
        return json.loads((Path(run_root) / prefix / "state.json").read_text())
    except (OSError, ValueError):
        return None


def list_labs(run_root: Path = RUN_ROOT) -> list[dict]:
    """Every lab prefix found (run dirs and namespaces) with owner pid, liveness and namespaces."""
    prefixes = {n[:8] for n in lab_namespaces()}
    if Path(run_root).is_dir():
        prefixes |= {p.name for p in Path(run_root).iterdir() if PREFIX_RE.match(p.name)}
    out = []
    for prefix in sorted(prefixes):
        state = read_state(prefix, run_root) or {}
        owner = state.get("owner_pid")
        out.append({"prefix": prefix, "topology": state.get("topology", {}).get("name"),
                    "status": state.get("status", "unknown"), "owner_pid": owner,
                    "owner_alive": pid_alive(owner), "namespaces": lab_namespaces(prefix)})
    return out


def cleanup_all_lab_prefixes(force: bool = False, run_root: Path = RUN_ROOT) -> list[str]:
    """Clean every lab whose owner process is gone (or detached); with *force* every lab.

    Labs of live processes (another test run on this machine) are left alone unless *force*.
    """
    done = []
    for info in list_labs(run_root):
        if force or not info["owner_alive"]:
            cleanup(info["prefix"], run_root)
            done.append(info["prefix"])
    return done
