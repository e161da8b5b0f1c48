"""JSON record of one scenario run: what happened when, what the client saw, and the RFC bound.

Times are CLOCK_MONOTONIC nanoseconds (``*_ns``, shared by every namespace on the host), durations in
milliseconds (``*_ms``).  Events are dicts with at least ``t_ns`` and ``kind``:

* ``state``  -- ``node``, ``state`` (init|backup|master|fault|stopped), optional ``reason``
* ``fault``  -- ``node``, ``name`` (crash, kill, term, ...)
* ``advert`` -- ``node``, ``vrid``, ``priority`` (one VRRP advertisement seen on the LAN)
* ``garp``   -- ``node``, ``ip`` (gratuitous ARP / unsolicited NA seen on the LAN)
* ``fdb``    -- ``mac``, ``from``, ``to`` (bridge ports), ``node`` (owner of the new port)
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from vmaclab.observe import adverts, fdb_moves, frames

STATES = ("init", "backup", "master", "fault", "stopped")


def rfc_bounds(advert_ms: float, priority: int) -> tuple[float, float]:
    """(Master_Down_Interval, Skew_Time) in ms for a backup of ``priority`` (RFC 9568 §6.1).

    Skew_Time = ((256 - priority) * Master_Adver_Interval) / 256;
    Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    """
    if not 1 <= priority <= 255:
        raise ValueError(f"priority must be 1..255, got {priority}")
    skew = (256 - priority) * advert_ms / 256.0
    return 3 * advert_ms + skew, skew


@dataclass
class RunRecord:
    """One run of one scenario (one implementation, one event, one advert interval)."""
    impl: str
    event: str
    advert_ms: float
    run: int = 0
    backup_priority: int = 100
    fault_ns: int | None = None
    fault_node: str | None = None
    old_master: str | None = None
    new_master: str | None = None
    nodes: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    probe: dict | None = None          # ProbeSummary.to_dict()
    mdi_ms: float | None = None
    skew_ms: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        mdi, skew = rfc_bounds(self.advert_ms, self.backup_priority)
        if self.mdi_ms is None:
            self.mdi_ms = round(mdi, 3)
        if self.skew_ms is None:
            self.skew_ms = round(skew, 3)

    @property
    def outage_ms(self) -> float | None:
        """Client-observed longest outage (ms), None without a probe summary."""
        return self.probe["outage_ms"] if self.probe else None

    @property
    def lost(self) -> int | None:
        """Probes that got no reply."""
        return self.probe["lost"] if self.probe else None

    @property
    def bound_ns(self) -> int | None:
        """Monotonic time of the RFC bound: fault + Master_Down_Interval."""
        return None if self.fault_ns is None else self.fault_ns + int(self.mdi_ms * 1e6)

    def add_event(self, t_ns: int, kind: str, **detail) -> None:
        """Append an event (kept in time order)."""
        self.events.append({"t_ns": int(t_ns), "kind": kind, **detail})
        self.events.sort(key=lambda e: e["t_ns"])

    def add_fault(self, t_ns: int, node: str, name: str) -> None:
        """Record the injected fault (also sets ``fault_ns``/``fault_node`` if not set yet)."""
        self.add_event(t_ns, "fault", node=node, name=name)
        if self.fault_ns is None:
            self.fault_ns, self.fault_node = int(t_ns), node

    def events_of(self, kind: str, node: str | None = None) -> list[dict]:
        """Events of one kind (and node)."""
        return [e for e in self.events if e["kind"] == kind and (node is None or e.get("node") == node)]

    def bench_row(self) -> dict:
        """The per-run fields of ``vmac-lab bench failover --json`` (netns-lab/README.md)."""
        return {"impl": self.impl, "event": self.event, "advert_ms": self.advert_ms, "run": self.run,
                "outage_ms": self.outage_ms, "lost": self.lost, "mdi_ms": self.mdi_ms,
                "skew_ms": self.skew_ms, "old_master": self.old_master, "new_master": self.new_master}

    def to_dict(self) -> dict:
        """Plain JSON-able dict (includes the derived ``outage_ms`` and ``lost``)."""
        d = asdict(self)
        d["outage_ms"], d["lost"] = self.outage_ms, self.lost
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunRecord:
        """Inverse of :meth:`to_dict`."""
        d = {k: v for k, v in d.items() if k not in ("outage_ms", "lost")}
        return cls(**d)

    def save(self, path: str) -> str:
        """Write the record as indented JSON (atomically); returns ``path``."""
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> RunRecord:
        """Read a record written by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))


def events_from_observer(obs: list[dict], port_node: dict[str, str], vmacs: list[str] | None = None
                         ) -> list[dict]:
    """Record events from observer output: adverts and GARPs/unsolicited NAs attributed to the node
    behind the bridge port they entered on (``port_node``: ifname -> node; a shared vMAC cannot tell
    the boxes apart, the port can), and FDB moves of each MAC in ``vmacs``."""
    out: list[dict] = []
    for e in adverts(obs):
        if e["ifname"] in port_node:
            out.append({"t_ns": e["t_ns"], "kind": "advert", "node": port_node[e["ifname"]],
                        "vrid": e["vrid"], "priority": e["priority"], "src_mac": e["src_mac"]})
    for e in frames(obs, None, "rx"):
        garp = (e["kind"] == "arp" and e["gratuitous"]) or (e["kind"] == "na" and not e["solicited"])
        if garp and e["ifname"] in port_node:
            out.append({"t_ns": e["t_ns"], "kind": "garp", "node": port_node[e["ifname"]],
                        "ip": e["src_ip"] if e["kind"] == "arp" else e["target"], "src_mac": e["src_mac"]})
    for mac in vmacs or []:
        for m in fdb_moves(obs, mac):
            out.append({"t_ns": m["t_ns"], "kind": "fdb", "mac": mac, "from": m["from"], "to": m["to"],
                        "node": port_node.get(m["to"])})
    return sorted(out, key=lambda e: e["t_ns"])


def save_records(records: list[RunRecord], path: str) -> str:
    """Write the bench list (one :meth:`RunRecord.bench_row` per run) as JSON; returns ``path``."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump([r.bench_row() for r in records], fh, indent=1)
        fh.write("\n")
    return path
