"""The seed's two-node web cluster in the lab: topology ``webcluster``, lighttpd per node, vmacd
configured by ``vmacd import heartbeat`` from a per-run ``ha.d``, a client that watches the page.

``Cluster`` (a context manager) builds it; the scenarios (``vmaclab.webcluster``) and the tests
drive it. Two layouts:

* ``webcluster``: haresources ``a 192.0.2.254 httpd::start`` -- the seed's line: a serves, b
  stands by; lighttpd is the resource (started on the master only, with a monitor);
* ``loadshare``: ``a 192.0.2.254`` and ``b 192.0.2.253`` -- two VIPs, crossed priorities, both
  nodes active; lighttpd runs on both all the time, only the addresses move.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from . import hadir
from .httpprobe import serving
from .impls.fifo import STATE_WORDS
from .impls.vmacd import Vmacd
from .lab import Lab
from .topology import resolve
from .util import LabError, run, wait_until
from .websvc import WebServer

NODES = ("a", "b")
SEED_NODES = {"linux-ha-a": "a", "linux-ha-b": "b"}
SEED_VIP = "10.1.1.1"
LAN, LINK = "svc", "hb"
VIP2 = "192.0.2.253"


@dataclass
class Options:
    """Timings of one cluster (the Heartbeat side first, then vmacd's resource monitor)."""
    layout: str = "webcluster"               # or "loadshare"
    keepalive_ms: int = 200
    initdead_ms: int | None = 2000
    monitor_interval_ms: int = 500
    monitor_timeout_ms: int = 1000
    monitor_fall: int = 1
    failure_timeout_ms: int = 3000
    docroot_device: str | None = None         # shared storage holding the docroot (filesystem)
    docroot_fstype: str = "ext4"

    def monitor(self) -> dict[str, Any]:
        return {"monitor_interval": f"{self.monitor_interval_ms}ms",
                "monitor_timeout": f"{self.monitor_timeout_ms}ms",
                "monitor_fall": self.monitor_fall,
                "failure_timeout": f"{self.failure_timeout_ms}ms"}


class HaNode(Vmacd):
    """vmacd on one cluster node with the imported config; keeps the history per instance."""

    def __init__(self, toml_text: str) -> None:
        super().__init__()
        self.toml_text = toml_text
        #: (monotonic time, instance, state) from the notify fifo
        self.transitions: list[tuple[float, str, str]] = []

    def render(self) -> str:
        return self.toml_text

    def _parse(self, line: str) -> None:
        """One fifo line: INSTANCE NAME STATE PRIORITY."""
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "INSTANCE" and parts[2] in STATE_WORDS:
            self._state = STATE_WORDS[parts[2]]
            t = time.monotonic()
            self.history.append((t, self._state))
            self.transitions.append((t, parts[1], self._state))

    def states(self) -> dict[str, str]:
        """{instance: state}; {} when the daemon does not answer."""
        reply = self.status() if self.proc is not None and self.proc.poll() is None else None
        return {i["name"]: i["state"] for i in (reply or {}).get("instances", [])}


class Cluster:
    """Lab, web servers, ha.d + import, vmacd on a and b; ``with Cluster(opts) as c: ...``."""

    def __init__(self, opts: Options | None = None) -> None:
        self.opts = opts or Options()
        self.lab = Lab(resolve("webcluster"))
        self.client = "c1"
        self.web: dict[str, WebServer] = {}
        self.nodes: dict[str, HaNode] = {}
        self.imported: dict[str, hadir.Imported] = {}

    # -- names -----------------------------------------------------------------------------------
    @property
    def vips(self) -> dict[str, str]:
        """instance name -> VIP (ha1 is a's, ha2 b's in loadshare)."""
        vip1 = self.lab.vip(LAN)
        return {"ha1": vip1} if self.opts.layout == "webcluster" else {"ha1": vip1, "ha2": VIP2}

    def primary(self, inst: str) -> str:
        return "a" if inst == "ha1" else "b"

    def vmac(self, inst: str) -> str:
        return f"00:00:5e:00:01:{int(inst[2:]):02x}"

    def hamap(self) -> hadir.HaMap:
        return hadir.HaMap(nodes=SEED_NODES,
                           link_addrs={n: self.lab.addr(n, LINK) for n in NODES},
                           vips={SEED_VIP: self.lab.vip(LAN)},
                           keepalive_ms=self.opts.keepalive_ms, initdead_ms=self.opts.initdead_ms,
                           link_if=self.lab.ifname("a", LINK))

    def haresources(self) -> str | None:
        if self.opts.layout == "webcluster":
            return None                                      # the seed's own line, mapped
        return ("# active-active: each node the primary of one cluster IP; lighttpd runs on both\n"
                f"a {self.lab.vip(LAN)}\nb {VIP2}\n")

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.lab.up()
        try:
            self.setup()
        except BaseException:
            self.lab.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.lab.down()

    def setup(self) -> None:
        for node in NODES:
            self.configure(node)
        for node in NODES:
            if self.opts.layout == "loadshare":
                self.web[node].start()                       # a service running everywhere
            self.nodes[node].start()
        self.wait_converged(30.0 + (self.opts.initdead_ms or 0) / 1000)

    def configure(self, node: str) -> None:
        """ha.d -> ``vmacd import heartbeat`` in the node -> the node's vmacd.toml, checked."""
        workdir = self.lab.workdir(node)
        docroot = self.docroot(node)
        self.web[node] = web = WebServer(self.lab, node, docroot=docroot)
        hadir.write_hadir(workdir / "ha.d", self.hamap(), self.haresources())
        imp = hadir.import_config(self.lab, node, workdir / "ha.d")
        hadir.finish_config(self.lab, node, imp)
        hadir.web_resources(imp, web, self.opts.monitor())
        if docroot is not None:
            docroot.mkdir(exist_ok=True)
            hadir.add_resource_first(imp, "docroot", {
                "kind": "filesystem", "device": self.opts.docroot_device,
                "mountpoint": str(docroot), "fstype": self.opts.docroot_fstype,
                **self.opts.monitor()})
        self.imported[node] = imp
        inst = imp.doc["instance"][0]
        text = hadir.dumps(imp, f"vmacd import heartbeat {workdir / 'ha.d'} --node {node}, "
                                "then the lab's changes")
        r = HaNode(text).configure(self.lab, node, LAN, inst["vrid"], self.lab.vip(LAN),
                                   inst["priority"], self.opts.keepalive_ms)
        cp = self.lab.run(node, [sys.executable, "-m", "vmacd", "check", "-c", str(r.conf_path)],
                          check=False)
        if cp.returncode != 0:
            raise LabError(f"vmacd check on {node}: {cp.stdout}{cp.stderr}")
        self.nodes[node] = r

    def docroot(self, node: str) -> Path | None:
        """The node's own mountpoint of the shared docroot (None: the node's page)."""
        return self.lab.workdir(node) / "shared" if self.opts.docroot_device else None

    def expected(self) -> dict[str, dict[str, str]]:
        """{node: {instance: state}} with every primary master."""
        return {n: {i: "master" if self.primary(i) == n else "backup" for i in self.vips}
                for n in NODES}

    def wait_converged(self, timeout: float) -> None:
        want = self.expected()
        try:
            wait_until(lambda: all(self.nodes[n].states() == want[n] for n in NODES)
                       and all(self.serving(i) == self.primary(i) for i in self.vips),
                       timeout, interval=0.1, what="the cluster: primaries master and serving")
        except TimeoutError as exc:
            got = {n: self.nodes[n].states() for n in NODES}
            raise LabError(f"{exc}: states {got}; a's log: {self.nodes['a'].log_tail(8)}") from exc

    # -- what the client sees, what the nodes run ------------------------------------------------
    def serving(self, inst: str = "ha1") -> str | None:
        return serving(self.lab.ns(self.client), self.vips[inst])

    def web_running(self) -> dict[str, bool]:
        return {n: self.web[n].pid() is not None for n in NODES}

    def cut(self, node: str, up: bool = False) -> float:
        """Pull (or put back) *node*'s service-LAN cable, at the bridge; returns the time."""
        run(["ip", "-n", self.lab.bridge_ns(LAN), "link", "set", self.lab.bridge_port(node, LAN),
             "up" if up else "down"])
        return time.monotonic()
