"""The seed's Heartbeat configuration as a lab node's ``ha.d``, and its vmacd config by the importer.

``write_hadir`` maps the verbatim seed files (``tests/unit/data/heartbeat-seed``) to the lab, line by
line, changing only what must change:

* ``keepalive`` to the scenario's interval, ``deadtime``/``warntime``/``initdead`` scaled by the
  same factor (the seed's 2 s gives the seed's values); ``initdead`` may be given on its own;
* ``ucast eth1 ADDR``: one line per node with its heartbeat-link address (one file serves every
  node; a node skips its own address);
* ``node linux-ha-a`` / ``linux-ha-b`` -> the lab's node names; the haresources node and the
  cluster IP likewise (``linux-ha-a 10.1.1.1 httpd::start`` -> ``a 192.0.2.254 httpd::start``).

``import_config`` runs ``vmacd import heartbeat DIR --node NODE`` inside the node's namespace and
returns the TOML document; ``finish_config`` adds the lab's plumbing (per-node control socket,
notify fifo, state dir) and swaps the service's commands for lighttpd's.
"""
from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmacd.config import emit

if TYPE_CHECKING:
    from .lab import Lab
    from .websvc import WebServer

SEED_DIR = Path(__file__).resolve().parents[2] / "tests" / "unit" / "data" / "heartbeat-seed"
SEED_KEEPALIVE_MS = 2000
_SCALED = ("keepalive", "deadtime", "warntime", "initdead")


def heartbeat_time(ms: int) -> str:
    """A Heartbeat ha.cf time: whole seconds as a number, else with the ms suffix."""
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


@dataclass
class HaMap:
    """What the seed's names and addresses become in the lab."""
    nodes: dict[str, str]                   # seed node -> lab node, in the seed's order
    link_addrs: dict[str, str]              # lab node -> address on the heartbeat link
    vips: dict[str, str]                    # seed cluster IP -> lab VIP
    keepalive_ms: int = SEED_KEEPALIVE_MS
    initdead_ms: int | None = None          # None: scaled like the others
    link_if: str = "eth1"

    def seed_time_ms(self, word: str, seconds: str) -> int:
        if word == "initdead" and self.initdead_ms is not None:
            return self.initdead_ms
        if word == "keepalive":
            return self.keepalive_ms
        return round(float(seconds) * 1000 * self.keepalive_ms / SEED_KEEPALIVE_MS)


def map_hacf(text: str, m: HaMap) -> str:
    out = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in _SCALED:
            out.append(f"{words[0]} {heartbeat_time(m.seed_time_ms(words[0], words[1]))}")
        elif words[:1] == ["bcast"]:
            out.append(f"bcast {m.link_if}")
        elif words[:1] == ["ucast"]:
            out += [f"ucast {m.link_if} {addr}" for addr in m.link_addrs.values()]
        elif words[:1] == ["node"]:
            out.append(f"node    {m.nodes[words[1]]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def map_haresources(text: str, m: HaMap) -> str:
    out = []
    for line in text.splitlines():
        words = line.split()
        if words and not line.lstrip().startswith("#"):
            words = [m.nodes.get(words[0], words[0])] + [m.vips.get(w, w) for w in words[1:]]
            line = " ".join(words)
        out.append(line)
    return "\n".join(out) + "\n"


def write_hadir(path: Path, m: HaMap, haresources: str | None = None) -> Path:
    """Write ha.cf, authkeys (mode 600, as Heartbeat demands) and haresources under *path*.

    *haresources*: a text of the lab's own instead of the mapped seed's (loadshare)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "ha.cf").write_text(map_hacf((SEED_DIR / "ha.cf").read_text(), m))
    auth = path / "authkeys"
    auth.write_text((SEED_DIR / "authkeys").read_text())
    auth.chmod(0o600)
    res = haresources if haresources is not None else map_haresources(
        (SEED_DIR / "haresources").read_text(), m)
    (path / "haresources").write_text(res)
    return path


@dataclass
class Imported:
    """The importer's document for one node, its notes, and what the lab changed afterwards."""
    doc: dict[str, Any]
    notes: list[str]
    changes: list[str] = field(default_factory=list)


def import_config(lab: Lab, node: str, hadir: Path) -> Imported:
    """``vmacd import heartbeat HADIR --node NODE`` run inside *node*'s namespace."""
    cp = lab.run(node, [sys.executable, "-m", "vmacd", "import", "heartbeat", str(hadir),
                        "--node", node], check=False)
    if cp.returncode != 0:
        raise RuntimeError(f"vmacd import heartbeat on {node} exited {cp.returncode}: "
                           f"{cp.stderr.strip()}")
    notes = [ln.removeprefix("note: ") for ln in cp.stderr.splitlines() if ln.strip()]
    return Imported(tomllib.loads(cp.stdout), notes)


def lab_plumbing(imp: Imported, workdir: Path) -> None:
    """Per-node paths the lab needs because every node shares the host's file system."""
    g = imp.doc.setdefault("global", {})
    g["control_socket"] = str(workdir / "vmacd.sock")
    g["notify"] = str(workdir / "notify.sh")
    g["state_dir"] = str(workdir / "state")
    imp.changes.append("global: control_socket, notify, state_dir under the node's work "
                       "directory [lab]")


def web_resources(imp: Imported, web: WebServer, monitor: Mapping[str, Any],
                  names: tuple[str, ...] = ("httpd",)) -> None:
    """The service's commands become Debian's lighttpd (start, stop, monitor + its timings)."""
    for name in names:
        res = imp.doc.get("resource", {}).get(name)
        if res is None:
            continue
        res.update(start=web.start_argv, stop=web.stop_argv, monitor=web.monitor_argv, **monitor)
        imp.changes.append(f"resource {name}: lighttpd start/stop/monitor")


def add_resource_first(imp: Imported, name: str, table: Mapping[str, Any]) -> None:
    """A resource of the lab's own (the shared docroot), started before the others."""
    imp.doc.setdefault("resource", {})[name] = dict(table)
    for inst in imp.doc.get("instance", []):
        inst["resources"] = [name, *inst.get("resources", [])]
    imp.changes.append(f"resource {name}: {dict(table)} first in every instance")


def dumps(imp: Imported, header: str) -> str:
    """The final TOML text."""
    return emit.dumps(imp.doc, header=[header, *(f"changed: {c}" for c in imp.changes)])


def finish_config(lab: Lab, node: str, imp: Imported) -> None:
    """The lab's plumbing (see lab_plumbing)."""
    lab_plumbing(imp, lab.workdir(node))

