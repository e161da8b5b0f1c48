"""Heartbeat (ha.cf + authkeys + haresources) -> a vmacd config document.

Heartbeat runs one cluster of nodes with resource groups; VRRP runs one virtual router per group,
interface and address family. The translation, line by line:

  keepalive      -> advert_interval (VRRPv3, whole centiseconds)
  warntime       -> warn_after                 initdead -> startup_delay
  deadtime       -> a note: VRRP's failover time is 3 x advert_interval + skew, not configurable
  bcast/mcast/ucast/serial -> notes: they describe Heartbeat's own heartbeat path. VRRP advertises
                    by multicast on the VIP's LAN, where its adverts and gratuitous ARPs from the
                    virtual MAC move the switch; a ucast peer on that LAN -> unicast_peers
  node           -> global.node (the node this config is for) and priorities
  auto_failback  -> preempt                    ping HOST -> a track_script pinging it
  authkeys crc|md5|sha1 -> [auth.heartbeat] hmac-sha256 (crc had no key and no security)
  haresources    -> one instance per line, interface and family (import_haresources.py)

The instance goes on the interface whose subnet holds the VIP on this box (`Box`); when no
interface does (or offline) a placeholder is written and a note says what to replace. Everything
not translated becomes a note (the CLI prints notes on stderr); nothing is dropped silently.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from vmacd.config import durations
from vmacd.config.import_haresources import (
    Group,
    mail_path,
    mail_script,
    parse_haresources,
    place,
)
from vmacd.config.importing import (
    PLACEHOLDER_IFACE,
    Box,
    Imported,
    IPInterface,
    OfflineBox,
    Unusable,
    safe_name,
    unique_name,
)

_MEDIA = ("bcast", "mcast", "ucast", "serial")
_IGNORED = {"udpport", "baud", "logfile", "debugfile", "logfacility", "use_logd", "crm",
            "compression", "traditional_compression", "respawn", "apiauth", "debug", "coredumps",
            "realtime", "uuidfrom", "autojoin", "hbgenmethod", "msgfmt", "conn_logd_time",
            "max_rexmit_delay", "deadping", "hopfudge", "stonith", "stonith_host", "watchdog"}
DEFAULT_DIR = "/etc/vmacd"


@dataclass
class _HaCf:
    interval_us: int = 2_000_000          # Heartbeat's default keepalive is 2 s
    warn_us: int | None = None
    initdead_us: int | None = None
    media: list[tuple[str, list[str]]] = field(default_factory=list)   # (where, words)
    nodes: list[str] = field(default_factory=list)
    preempt: bool | None = None
    pings: list[str] = field(default_factory=list)


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """Non-empty lines without comments, backslash continuations joined, as (lineno, words)."""
    out, pending, start = [], "", 0
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].rstrip()
        if not pending:
            start = no
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split()
        pending = ""
        if words:
            out.append((start, words))
    return out


def _time_us(text: str) -> int:
    """Heartbeat times: a number of seconds, or with an ms suffix."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return durations.parse_us(text + "s")
    return durations.parse_us(text)


def parse_hacf(text: str, notes: list[str]) -> _HaCf:
    cf = _HaCf()
    for no, words in _lines(text):
        word, args = words[0], words[1:]
        where = f"ha.cf:{no}: {' '.join(words)}"
        try:
            _directive(cf, word, args, where, notes)
        except (IndexError, durations.DurationError):
            notes.append(f"{where}: unreadable value, not translated")
    return cf


def _directive(cf: _HaCf, word: str, args: list[str], where: str, notes: list[str]) -> None:
    if word == "keepalive":
        cf.interval_us = _time_us(args[0])
    elif word == "warntime":
        cf.warn_us = _time_us(args[0])
    elif word == "initdead":
        cf.initdead_us = _time_us(args[0])
        notes.append(f"{where}: startup_delay = {durations.format_us(cf.initdead_us)}: after it "
                     "starts, vmacd waits this long before it may become master")
    elif word == "deadtime":
        notes.append(f"{where}: not translated: VRRP declares the master dead after "
                     "3 x advert_interval + skew; to keep this deadtime, use advert_interval "
                     f"= deadtime / 3 ({durations.format_us(_time_us(args[0]) // 3)})")
    elif word in _MEDIA:
        if not args:
            raise IndexError(word)
        cf.media.append((where, [word, *args]))
    elif word == "node":
        cf.nodes += args
    elif word == "auto_failback":
        if args[0] not in ("on", "off", "legacy"):
            raise IndexError(args[0])
        cf.preempt = args[0] == "on"
        if not cf.preempt:
            notes.append(f"{where}: preempt = false: a node that comes back does not take the "
                         "VIPs back from a running master" + (" (legacy read as off)"
                                                              if args[0] == "legacy" else ""))
    elif word == "ping":
        cf.pings += args
    elif word in _IGNORED:
        notes.append(f"{where}: not translated (no vmacd equivalent)")
    else:
        notes.append(f"{where}: unknown directive, not translated")


def parse_authkeys(text: str, notes: list[str], files_dir: str = DEFAULT_DIR) -> dict[str, Any] | None:
    """The selected key -> an [auth] table (hmac-sha256)."""
    keys: dict[str, tuple[str, str]] = {}
    chosen = None
    for _, words in _lines(text):
        if words[0] == "auth" and len(words) > 1:
            chosen = words[1]
        elif len(words) >= 2:
            keys[words[0]] = (words[1].lower(), " ".join(words[2:]))
    if chosen is None or chosen not in keys:
        notes.append("authkeys: no usable 'auth N' line; no authentication configured")
        return None
    method, secret = keys[chosen]
    if method == "crc" or not secret:
        path = os.path.join(files_dir, "heartbeat.key")
        notes.append(f"authkeys: {method} has no secret and no security; translated to hmac-sha256 "
                     f"with key_file {path}: create it on one node and copy it to every node "
                     f"(head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path})")
        return {"type": "hmac-sha256", "key_file": path}
    notes.append(f"authkeys: {method} -> hmac-sha256 with a key derived from the Heartbeat key "
                 "(SHA-256: the same on every node that imports these authkeys)")
    derived = hashlib.sha256(b"vmacd-heartbeat:" + secret.encode()).hexdigest()
    return {"type": "hmac-sha256", "key": derived}


def _this_node(cf: _HaCf, node: str | None, groups: list[Group], box: Box, notes: list[str]) -> str:
    """The node the config is for: --node (which must be a node of ha.cf), else this box's
    hostname when ha.cf lists it (Heartbeat's uname -n), else the first node."""
    by_lower = {n.lower(): n for n in cf.nodes}
    if node is not None:
        if cf.nodes and node.lower() not in by_lower:
            raise Unusable(f"--node {node}: not a node of ha.cf (its nodes: {', '.join(cf.nodes)})")
        if not cf.nodes:
            notes.append(f"ha.cf: no node lines; config written for --node {node}")
        return by_lower.get(node.lower(), node)
    host = box.hostname()
    if host and host.lower() in by_lower:
        notes.append(f"config written for node {by_lower[host.lower()]} (this box's hostname); "
                     "for another node run again with --node NAME")
        return by_lower[host.lower()]
    me = cf.nodes[0] if cf.nodes else (groups[0].node if groups else "node1")
    notes.append(f"config written for node {me}" + (f" (this box is {host}, not a node of ha.cf)"
                                                    if host else "")
                 + "; for another node run again with --node NAME")
    return me


def import_heartbeat(hacf: str, authkeys: str | None, haresources: str, node: str | None = None,
                     box: Box | None = None, files_dir: str = DEFAULT_DIR) -> Imported:
    """Translate the three files' texts for `node` on `box` (default: offline). Files the config
    refers to (key, notify scripts) are named under `files_dir`. Unusable: --node unknown."""
    box = box or OfflineBox()
    result = Imported({})
    notes = result.notes
    cf = parse_hacf(hacf, notes)
    resource_notes: list[str] = []
    groups = parse_haresources(_lines(haresources), box, resource_notes)
    me = _this_node(cf, node, groups, box, notes)
    auth = parse_authkeys(authkeys, notes, files_dir) if authkeys is not None else None
    if authkeys is None:
        notes.append("authkeys: missing; no authentication configured")
    notes += resource_notes
    doc: dict[str, Any] = {"global": {"node": me}}
    if auth:
        doc["auth"] = {"heartbeat": auth}
    plan = _Plan(cf, me, box, result, files_dir, bool(auth))
    for vrid, group in enumerate(groups, 1):
        plan.group(vrid, group)
    plan.media_notes()
    doc["instance"] = [plan.render(p) for p in plan.planned]
    scripts = _ping_scripts(cf) if plan.planned else {}
    for key, value in (("track_script", scripts), ("resource", plan.resources),
                       ("sync_group", plan.syncs)):
        if value:
            doc[key] = value
    result.doc = doc
    return result


@dataclass
class _Planned:
    name: str
    iface: str
    vrid: int
    group: Group
    vips: list[IPInterface]
    first: bool                                    # the group's first instance: runs its resources
    peers: list[str] = field(default_factory=list)


class _Plan:
    """Instances, resources and sync groups for the haresources groups, in order."""

    def __init__(self, cf: _HaCf, me: str, box: Box, result: Imported, files_dir: str,
                 auth: bool) -> None:
        self.cf, self.me, self.box, self.result, self.files_dir = cf, me, box, result, files_dir
        self.notes = result.notes
        self.auth = auth
        self.planned: list[_Planned] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.syncs: dict[str, dict[str, Any]] = {}
        self.interval_cs = max(1, min(4095, round(cf.interval_us / 10_000)))
        if self.interval_cs * 10_000 != cf.interval_us:
            self.notes.append(f"ha.cf: keepalive {durations.format_us(cf.interval_us)} rounded to "
                              f"{durations.format_us(self.interval_cs * 10_000)} (VRRPv3: 10ms..40.95s)")

    def group(self, vrid: int, group: Group) -> None:
        where = f"haresources:{group.lineno}"
        if not group.vips:
            names = [n for n, _ in group.resources]
            self.notes.append(f"{where}: no IP address: VRRP needs one; line not translated"
                              + (f" (resources {', '.join(names)} left out)" if names else ""))
            return
        if self.cf.nodes and group.node.lower() not in {n.lower() for n in self.cf.nodes}:
            self.notes.append(f"{where}: {group.node} is not a node of ha.cf; priority 100 here")
        buckets: dict[tuple[str, int], list[IPInterface]] = {}
        for vip in group.vips:
            iface, addr = place(vip, self.box, self.notes)
            if iface is None:
                iface = PLACEHOLDER_IFACE
                self._placeholder(vip.where, addr)
            buckets.setdefault((iface, addr.version), []).append(addr)
        names = []
        first_iface = next(iter(buckets))[0]
        for (iface, fam), vips in buckets.items():
            name = f"ha{vrid}" if not names else safe_name(
                f"ha{vrid}" + (f"-{iface}" if iface != first_iface else "") + ("-v6" if fam == 6 else ""))
            name = unique_name(name, {p.name for p in self.planned})
            if fam == 6 and not vips[0].ip.is_link_local:
                ll = ipaddress.ip_interface(f"fe80::1:{vrid:x}/64")
                vips.insert(0, ll)
                self.notes.append(f"{where}: added {ll} as the first IPv6 address of {name} "
                                  "(RFC 9568 §5.2.9 needs a link-local first); use the same on every node")
            self.planned.append(_Planned(name, iface, vrid, group, vips, not names))
            names.append(name)
        self.notes.append(f"{where}: vrid {vrid}: no other VRRP router on that LAN may use it "
                          "(change it on every node if one does)")
        if len(names) > 1:
            self.syncs[f"ha{vrid}"] = {"instances": names}
            self.notes.append(f"{where}: instances {', '.join(names)} form sync_group ha{vrid}"
                              + (f"; {names[0]} runs the group's resources"
                                 if group.resources or group.mail else ""))

    def _placeholder(self, where: str, addr: IPInterface) -> None:
        why = ("offline" if self.box.offline else
               f"no interface on this box has an address in a subnet holding {addr.ip}")
        self.notes.append(f"{where}: interface \"{PLACEHOLDER_IFACE}\" written ({why}): replace it "
                          f"with the service LAN's interface (where the clients reach {addr.ip}, "
                          "not the heartbeat link)"
                          + (f", and /{addr.network.prefixlen} with that LAN's prefix length"
                             if addr.network.prefixlen == addr.ip.max_prefixlen else ""))
        self.result.todo.append(f"interface \"{PLACEHOLDER_IFACE}\": the service LAN's interface for "
                                f"{addr.ip}" + (" (and its prefix length)"
                                                if addr.network.prefixlen == addr.ip.max_prefixlen else ""))

    def media_notes(self) -> None:
        """One note per Heartbeat media line; ucast peers on a VIP's LAN become unicast_peers."""
        lans = ", ".join(sorted({f"{p.iface} {v.network}" for p in self.planned for v in p.vips
                                 if not v.ip.is_link_local}))
        own = {n.ip for _, n in self.box.networks()}
        for where, (word, *args) in self.cf.media:
            if word == "ucast" and len(args) > 1:
                self._ucast(where, args[0], args[1], lans, own)
                continue
            text = (f"{where}: Heartbeat's heartbeat path, not used: VRRP advertises by multicast "
                    f"(224.0.0.18, IPv6 ff02::12) on the VIP's LAN ({lans}), where the "
                    "advertisements and gratuitous ARPs from the virtual MAC move the switch")
            if word in ("bcast", "mcast") and args[0] in {p.iface for p in self.planned}:
                text = (f"{where}: {args[0]} is the VIP's LAN: VRRP advertises there by multicast "
                        "(224.0.0.18, IPv6 ff02::12)")
            self.notes.append(text + ("; Heartbeat's group is not used" if word == "mcast" else ""))

    def _ucast(self, where: str, iface: str, text: str, lans: str, own: set[Any]) -> None:
        try:
            peer = ipaddress.ip_address(text)
        except ValueError:
            self.notes.append(f"{where}: unreadable address, not translated")
            return
        kept = [p for p in self.planned if p.vips[-1].version == peer.version
                and any(peer in v.network and v.network.prefixlen < peer.max_prefixlen for v in p.vips)]
        mine = (" (an address of this box: one ha.cf serves every node; vmacd skips its own "
                "addresses at run time)") if peer in own else ""
        for p in kept:
            p.peers.append(str(peer))
        if kept:
            self.notes.append(f"{where}: {peer} is on the VIP's LAN: unicast_peers of "
                              f"{', '.join(p.name for p in kept)}{mine}; VRRP then sends to the listed "
                              "peers only: list every node's address on that LAN")
            return
        self.notes.append(f"{where}: dropped: {peer} is not on the VIP's LAN ({lans})"
                          + (": its prefix is unknown here" if self._unknown_prefix() else "")
                          + f"{mine}; it is Heartbeat's heartbeat path on {iface}. VRRP must reach "
                          "its peers on the VIP's LAN: multicast there (add unicast_peers with the "
                          "nodes' LAN addresses if multicast is not possible)")

    def _unknown_prefix(self) -> bool:
        return any(v.network.prefixlen == v.ip.max_prefixlen for p in self.planned for v in p.vips)

    def render(self, p: _Planned) -> dict[str, Any]:
        cf = self.cf
        inst: dict[str, Any] = {
            "name": p.name, "interface": p.iface, "vrid": p.vrid, "version": 3,
            "priority": 150 if p.group.node.lower() == self.me.lower() else 100,
            "advert_interval": durations.format_us(self.interval_cs * 10_000),
        }
        if cf.warn_us and cf.warn_us > self.interval_cs * 10_000:
            inst["warn_after"] = durations.format_us(cf.warn_us)
        inst["virtual_ips"] = [str(v) for v in p.vips]
        if cf.preempt is not None:
            inst["preempt"] = cf.preempt
        if p.peers:
            inst["unicast_peers"] = p.peers
        if self.auth:
            inst["auth"] = "heartbeat"
        if cf.initdead_us:
            inst["startup_delay"] = durations.format_us(cf.initdead_us)
        if cf.pings:
            inst["track_scripts"] = [{"name": safe_name(f"ping_{h}"), "weight": -50} for h in cf.pings]
        if p.first:
            self._group_extras(p, inst)
        return inst

    def _group_extras(self, p: _Planned, inst: dict[str, Any]) -> None:
        names = []
        for name, table in p.group.resources:
            if self.resources.get(name, table) != table:
                name = unique_name(name, self.resources)
            self.resources[name] = table
            names.append(name)
        if names:
            inst["resources"] = names
        if p.group.mail:
            script = mail_script(p.group, p.name, mail_path(self.files_dir, p.name))
            self.result.files.append(script)
            inst["notify"] = script.path


def _ping_scripts(cf: _HaCf) -> dict[str, Any]:
    return {safe_name(f"ping_{p}"): {"command": ["/bin/ping", "-c", "1", "-W", "1", p],
                                      "interval": "2s", "timeout": "1500ms", "fall": 3, "rise": 2}
            for p in cf.pings}


def read_dir(directory: str) -> tuple[str, str | None, str]:
    """The three files of a Heartbeat config directory (authkeys may be missing)."""
    def text(name: str) -> str:
        with open(os.path.join(directory, name), encoding="utf-8") as fh:
            return fh.read()
    auth_path = os.path.join(directory, "authkeys")
    return text("ha.cf"), (text("authkeys") if os.path.exists(auth_path) else None), text("haresources")
