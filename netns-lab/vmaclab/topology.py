"""Declarative lab topology: LANs (one Linux bridge each) and nodes (routers, clients, attackers).

Addressing is deterministic (documented in netns-lab/README.md):

* LANs without explicit subnets get, in order of declaration, 192.0.2.0/24, 198.51.100.0/24,
  203.0.113.0/24 and 2001:db8:0:1::/64, 2001:db8:0:2::/64, ...
* On each LAN the i-th router (1-based, in declaration order) gets host .1i (r1 -> .11, r2 -> .12),
  the i-th client .10i (.101), the i-th attacker .20i (.201); IPv6 uses the same host number
  (2001:db8:0:1::11). The virtual IP is host .254 (``Topology.vip(lan)``).
* A node's interface on its k-th LAN (0-based, in the order of its ``lans`` list) is ``eth{k}``.
"""
from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import data_dir

KINDS = ("router", "client", "attacker")
_HOST_BASE = {"router": 10, "client": 100, "attacker": 200}
_V4_POOL = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
VIP_HOST = 254


@dataclass
class Lan:
    """One broadcast domain: a Linux bridge in its own namespace."""
    name: str
    v4: str
    v6: str


@dataclass
class Node:
    """A host in its own namespace, attached to one or more LANs."""
    name: str
    kind: str
    lans: list[str] = field(default_factory=list)


class Topology:
    """A graph of LANs and nodes; it only declares, ``Lab`` builds it."""

    def __init__(self, name: str = "lab") -> None:
        self.name = name
        self.lans: dict[str, Lan] = {}
        self.nodes: dict[str, Node] = {}

    # -- declaration -------------------------------------------------------------------------
    def add_lan(self, name: str, v4: str | None = None, v6: str | None = None) -> Lan:
        """Declare a LAN; subnets default to the next free documentation prefix."""
        _check_name(name, "lan", 6)
        if name in self.lans:
            raise ValueError(f"lan {name!r} declared twice")
        idx = len(self.lans)
        if v4 is None:
            if idx >= len(_V4_POOL):
                raise ValueError("more than 3 LANs need explicit v4 subnets")
            v4 = _V4_POOL[idx]
        v6 = v6 or f"2001:db8:0:{idx + 1:x}::/64"
        ipaddress.ip_network(v4), ipaddress.ip_network(v6)
        lan = Lan(name, v4, v6)
        self.lans[name] = lan
        return lan

    def add_node(self, name: str, kind: str, lans: list[str]) -> Node:
        """Declare a node of *kind* (router, client, attacker) attached to *lans*."""
        _check_name(name, "node", 6)
        if kind not in KINDS:
            raise ValueError(f"node {name!r}: kind must be one of {KINDS}, got {kind!r}")
        if name in self.nodes or name in self.lans:
            raise ValueError(f"name {name!r} used twice")
        for lan in lans:
            if lan not in self.lans:
                raise ValueError(f"node {name!r}: unknown lan {lan!r}")
        node = Node(name, kind, list(lans))
        self.nodes[name] = node
        return node

    def add_router(self, name: str, lans: list[str]) -> Node:
        """Declare a router (runs a VRRP implementation)."""
        return self.add_node(name, "router", lans)

    def add_client(self, name: str, lans: list[str]) -> Node:
        """Declare a client (runs the prober)."""
        return self.add_node(name, "client", lans)

    def add_attacker(self, name: str, lans: list[str]) -> Node:
        """Declare an attacker (sends forged advertisements with scapy)."""
        return self.add_node(name, "attacker", lans)

    # -- queries -----------------------------------------------------------------------------
    def routers(self) -> list[str]:
        """Router names in declaration order."""
        return [n.name for n in self.nodes.values() if n.kind == "router"]

    def clients(self) -> list[str]:
        """Client names in declaration order."""
        return [n.name for n in self.nodes.values() if n.kind == "client"]

    def attackers(self) -> list[str]:
        """Attacker names in declaration order."""
        return [n.name for n in self.nodes.values() if n.kind == "attacker"]

    def members(self, lan: str) -> list[str]:
        """Nodes attached to *lan*, in declaration order."""
        return [n.name for n in self.nodes.values() if lan in n.lans]

    def ifname(self, node: str, lan: str) -> str:
        """Interface name of *node* on *lan* inside the node's namespace (``eth0``, ``eth1``...)."""
        return f"eth{self.nodes[node].lans.index(lan)}"

    def host_id(self, node: str) -> int:
        """Host number of *node* (same on every LAN): routers 11.., clients 101.., attackers 201.."""
        n = self.nodes[node]
        same = [m.name for m in self.nodes.values() if m.kind == n.kind]
        return _HOST_BASE[n.kind] + same.index(node) + 1

    def addr(self, node: str, lan: str, family: int = 4) -> str:
        """Address (no prefix length) of *node* on *lan*."""
        if lan not in self.nodes[node].lans:
            raise KeyError(f"{node} is not on {lan}")
        return str(self._net(lan, family)[self.host_id(node)])

    def prefixlen(self, lan: str, family: int = 4) -> int:
        """Prefix length of *lan*'s subnet."""
        return self._net(lan, family).prefixlen

    def vip(self, lan: str, family: int = 4) -> str:
        """The conventional virtual IP of *lan* (host .254 / ::254)."""
        return str(self._net(lan, family)[VIP_HOST])

    def _net(self, lan: str, family: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        spec = self.lans[lan]
        return ipaddress.ip_network(spec.v4 if family == 4 else spec.v6)

    # -- (de)serialisation -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Load a TOML topology: ``[lan.NAME] v4/v6`` tables and ``[node.NAME] kind, lans``."""
        path = Path(path)
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return cls.from_dict(data, name=data.get("name", path.stem))

    @classmethod
    def from_dict(cls, data: dict, name: str = "lab") -> Topology:
        """Build from the TOML structure (see ``load``)."""
        topo = cls(name)
        for lname, spec in data.get("lan", {}).items():
            topo.add_lan(lname, spec.get("v4"), spec.get("v6"))
        for nname, spec in data.get("node", {}).items():
            topo.add_node(nname, spec.get("kind", "router"), spec.get("lans", list(topo.lans)[:1]))
        return topo

    def to_dict(self) -> dict:
        """The TOML structure of this topology (also stored in state.json)."""
        return {"name": self.name,
                "lan": {lan.name: {"v4": lan.v4, "v6": lan.v6} for lan in self.lans.values()},
                "node": {n.name: {"kind": n.kind, "lans": n.lans} for n in self.nodes.values()}}


def _check_name(name: str, what: str, maxlen: int) -> None:
    if not re.fullmatch(rf"[a-z][a-z0-9]{{0,{maxlen - 1}}}", name or ""):
        raise ValueError(f"{what} name must be a lowercase letter then up to {maxlen - 1} "
                         f"letters/digits, got {name!r}")


def builtin_dir() -> Path:
    """Directory holding the bundled topologies (netns-lab/topologies, or the package's copy)."""
    return data_dir("topologies")


def resolve(name_or_path: str | Path) -> Topology:
    """Load a topology by bundled name (``pair``) or by path."""
    p = Path(name_or_path)
    if not p.exists():
        cand = builtin_dir() / f"{name_or_path}.toml"
        if not cand.exists():
            raise FileNotFoundError(f"no topology {name_or_path!r} (neither a path nor in {builtin_dir()})")
        p = cand
    return Topology.load(p)
