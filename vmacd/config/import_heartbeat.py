"""Heartbeat (ha.cf + authkeys + haresources) -> a vmacd config document.

Heartbeat runs one cluster of nodes with resource groups; VRRP runs one virtual router per group
and address family. The translation, line by line:

  keepalive      -> advert_interval (VRRPv3, whole centiseconds)
  warntime       -> warn_after                 initdead -> startup_delay
  deadtime       -> a note: VRRP's failover time is 3 x advert_interval + skew, not configurable
  bcast/mcast/ucast IF -> interface;  ucast IF ADDR -> unicast_peers
  node           -> global.node (the node this config is for) and priorities
  auto_failback  -> preempt                    ping HOST -> a track_script pinging it
  authkeys crc|md5|sha1 -> [auth.heartbeat] hmac-sha256 (crc had no key and no security)
  haresources    -> one instance per line (per family): IPs -> virtual_ips, others -> resources

Everything not translated becomes a note (the CLI prints notes on stderr); nothing is dropped
silently.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from vmacd.config import durations

# Heartbeat resource agents living in /etc/ha.d/resource.d (called as AGENT ARGS... start|stop)
_AGENTS = {"Filesystem", "drbddisk", "MailTo", "Delay", "SendArp", "AudibleAlarm", "LVM", "Raid1",
           "ServeRAID", "WAS", "WinPopup", "Xinetd", "apache", "db2", "hto-mapfuncs", "ICP", "IPsrcaddr",
           "LinuxSCSI", "OCF", "portblock"}
_IP_AGENTS = {"IPaddr", "IPaddr2", "IPv6addr"}
_IGNORED = {"udpport", "baud", "serial", "logfile", "debugfile", "logfacility", "use_logd", "crm",
            "compression", "traditional_compression", "respawn", "apiauth", "debug", "coredumps",
            "realtime", "uuidfrom", "autojoin", "hbgenmethod", "msgfmt", "conn_logd_time",
            "max_rexmit_delay", "deadping", "hopfudge", "stonith", "stonith_host", "watchdog"}


@dataclass
class Imported:
    """The TOML document (plain dicts) and the notes for the user."""

    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class _HaCf:
    interval_us: int = 2_000_000          # Heartbeat's default keepalive is 2 s
    warn_us: int | None = None
    initdead_us: int | None = None
    interface: str | None = None
    peers: list[str] = field(default_factory=list)
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
            if word == "keepalive":
                cf.interval_us = _time_us(args[0])
            elif word == "warntime":
                cf.warn_us = _time_us(args[0])
            elif word == "initdead":
                cf.initdead_us = _time_us(args[0])
            elif word == "deadtime":
                notes.append(f"{where}: not translated: VRRP declares the master dead after "
                             "3 x advert_interval + skew; to keep this deadtime, use advert_interval "
                             f"= deadtime / 3 ({durations.format_us(_time_us(args[0]) // 3)})")
            elif word in ("bcast", "mcast", "ucast"):
                _link(cf, word, args, where, notes)
            elif word == "node":
                cf.nodes += args
            elif word == "auto_failback":
                cf.preempt = args[0] == "on"
                if args[0] == "legacy":
                    notes.append(f"{where}: legacy translated as preempt = false")
            elif word == "ping":
                cf.pings += args
            elif word in _IGNORED:
                notes.append(f"{where}: not translated (no vmacd equivalent)")
            else:
                notes.append(f"{where}: unknown directive, not translated")
        except (IndexError, durations.DurationError):
            notes.append(f"{where}: unreadable value, not translated")
    return cf


def _link(cf: _HaCf, word: str, args: list[str], where: str, notes: list[str]) -> None:
    if cf.interface is None:
        cf.interface = args[0]
    elif args[0] != cf.interface:
        notes.append(f"{where}: a second interface; vmacd advertises on {cf.interface} only")
    if word == "ucast":
        cf.peers.append(args[1])
        notes.append(f"{where}: {args[1]} -> unicast_peers; remove this box's own address if listed")
    elif word == "mcast":
        notes.append(f"{where}: VRRP uses its own group 224.0.0.18, not {args[1]}")
    elif len(args) > 1:
        notes.append(f"{where}: only {args[0]} is used")


def parse_authkeys(text: str, notes: list[str]) -> dict[str, Any] | None:
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
        notes.append(f"authkeys: {method} has no secret and no security; translated to hmac-sha256 "
                     "with key_file /etc/vmacd/heartbeat.key: create it on every node with the same "
                     "content (head -c 32 /dev/urandom | base64 > /etc/vmacd/heartbeat.key; chmod 600)")
        return {"type": "hmac-sha256", "key_file": "/etc/vmacd/heartbeat.key"}
    notes.append(f"authkeys: {method} -> hmac-sha256 with a key derived from the Heartbeat key "
                 "(SHA-256, the same on every node); move it to a key_file (chmod 600) and rotate it")
    derived = hashlib.sha256(b"vmacd-heartbeat:" + secret.encode()).hexdigest()
    return {"type": "hmac-sha256", "key": derived}


@dataclass
class _Group:
    node: str
    lineno: int
    vips: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=list)
    interface: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse_haresources(text: str, notes: list[str]) -> list[_Group]:
    groups = []
    for no, words in _lines(text):
        group = _Group(words[0], no)
        for token in words[1:]:
            _resource_token(group, token, f"haresources:{no}: {token}", notes)
        groups.append(group)
    return groups


def _resource_token(group: _Group, token: str, where: str, notes: list[str]) -> None:
    name, *args = token.split("::")
    if name in _IP_AGENTS:           # IPv6addr::2001:db8::10/64: the rest is one address spec
        args = token.split("::", 1)[1:]
    if name in _IP_AGENTS or not args:
        spec = args[0] if name in _IP_AGENTS and args else name
        parts = spec.split("/")
        try:
            addr = ipaddress.ip_address(parts[0])
        except ValueError:
            if name in _IP_AGENTS:
                notes.append(f"{where}: unreadable address, not translated")
                return
        else:
            prefix = parts[1] if len(parts) > 1 and parts[1].isdigit() else str(addr.max_prefixlen)
            if len(parts) < 2 or not parts[1].isdigit():
                notes.append(f"{where}: no prefix length given; /{prefix} assumed (Heartbeat took it "
                             "from the interface's route): add the subnet's prefix if clients need it")
            group.vips.append(ipaddress.ip_interface(f"{addr}/{prefix}"))
            if len(parts) > 2 and parts[2]:
                group.interface = group.interface or parts[2]
            if len(parts) > 3:
                notes.append(f"{where}: broadcast/label fields are not needed and not translated")
            return
    group.resources[safe_name(name)] = _resource(name, args, where, notes)


def _resource(name: str, args: list[str], where: str, notes: list[str]) -> dict[str, Any]:
    if name in _AGENTS:
        script = f"/etc/ha.d/resource.d/{name}"
        notes.append(f"{where}: needs the Heartbeat resource agent {script}")
        return {"start": [script, *args, "start"], "stop": [script, *args, "stop"]}
    if args == ["start"]:   # "httpd::start": the service, started and stopped the usual way
        notes.append(f"{where}: translated as the service {name} (start/stop)")
        args = []
    if args:
        script = f"/etc/init.d/{name}"
        return {"start": [script, *args, "start"], "stop": [script, *args, "stop"]}
    return {"start": ["/usr/sbin/service", name, "start"], "stop": ["/usr/sbin/service", name, "stop"]}


def safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(name)).lstrip("_.-") or "res"
    return safe[:32]


def import_heartbeat(hacf: str, authkeys: str | None, haresources: str,
                     node: str | None = None) -> Imported:
    """Translate the three files' texts; `node` is the box the config is for."""
    notes: list[str] = []
    cf = parse_hacf(hacf, notes)
    auth = parse_authkeys(authkeys, notes) if authkeys is not None else None
    if authkeys is None:
        notes.append("authkeys: missing; no authentication configured")
    groups = parse_haresources(haresources, notes)
    me = node or (cf.nodes[0] if cf.nodes else (groups[0].node if groups else "node1"))
    if node is None:
        notes.append(f"config written for node {me}; for another node run again with --node NAME")
    doc: dict[str, Any] = {"global": {"node": me}}
    if auth:
        doc["auth"] = {"heartbeat": auth}
    instances, resources, syncs = _instances(cf, groups, me, bool(auth), notes)
    doc["instance"] = instances
    scripts = _ping_scripts(cf, instances)
    if scripts:
        doc["track_script"] = scripts
    if resources:
        doc["resource"] = resources
    if syncs:
        doc["sync_group"] = syncs
    return Imported(doc, notes)


def _instances(cf: _HaCf, groups: list[_Group], me: str, auth: bool,
               notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    instances: list[dict[str, Any]] = []
    resources: dict[str, Any] = {}
    syncs: dict[str, Any] = {}
    interval_cs = max(1, min(4095, round(cf.interval_us / 10_000)))
    if interval_cs * 10_000 != cf.interval_us:
        notes.append(f"ha.cf: keepalive {durations.format_us(cf.interval_us)} rounded to "
                     f"{durations.format_us(interval_cs * 10_000)} (VRRPv3: 10ms..40.95s)")
    for vrid, group in enumerate(groups, 1):
        if not group.vips:
            notes.append(f"haresources:{group.lineno}: no IP address: VRRP needs one; line not translated")
            continue
        for name, res in group.resources.items():
            resources.setdefault(name, dict(res, timeout="30s"))
        names: list[str] = []
        for fam in (4, 6):
            vips = [v for v in group.vips if v.version == fam]
            if not vips:
                continue
            name = f"ha{vrid}" + ("-v6" if fam == 6 and len(names) else "")
            if fam == 6 and not vips[0].ip.is_link_local:
                ll = f"fe80::1:{vrid:x}/64"
                vips.insert(0, ipaddress.ip_interface(ll))
                notes.append(f"haresources:{group.lineno}: added {ll} as the first IPv6 address "
                             "(RFC 9568 §5.2.9 needs a link-local first); use the same on every node")
            inst: dict[str, Any] = {
                "name": name, "interface": group.interface or cf.interface or "eth0", "vrid": vrid,
                "version": 3, "priority": 150 if group.node == me else 100,
                "advert_interval": durations.format_us(interval_cs * 10_000),
            }
            if cf.warn_us and cf.warn_us > interval_cs * 10_000:
                inst["warn_after"] = durations.format_us(cf.warn_us)
            inst["virtual_ips"] = [str(v) for v in vips]
            if cf.preempt is not None:
                inst["preempt"] = cf.preempt
            peers = [p for p in cf.peers if ipaddress.ip_address(p).version == fam]
            if peers:
                inst["unicast_peers"] = peers
            if auth:
                inst["auth"] = "heartbeat"
            if cf.initdead_us:
                inst["startup_delay"] = durations.format_us(cf.initdead_us)
            if cf.pings:
                inst["track_scripts"] = [{"name": safe_name(f"ping_{p}"), "weight": -50} for p in cf.pings]
            if group.resources:
                inst["resources"] = list(group.resources)
            instances.append(inst)
            names.append(name)
        if not (group.interface or cf.interface):
            notes.append(f"haresources:{group.lineno}: no interface in ha.cf or the IP spec; eth0 assumed")
        if len(names) > 1:
            syncs[f"ha{vrid}"] = {"instances": names}
    return instances, resources, syncs


def _ping_scripts(cf: _HaCf, instances: list[dict[str, Any]]) -> dict[str, Any]:
    return {safe_name(f"ping_{p}"): {"command": ["/bin/ping", "-c", "1", "-W", "1", p],
                                      "interval": "2s", "timeout": "1500ms", "fall": 3, "rise": 2}
            for p in cf.pings} if instances else {}


def read_dir(directory: str) -> tuple[str, str | None, str]:
    """The three files of a Heartbeat config directory (authkeys may be missing)."""
    def text(name: str) -> str:
        with open(os.path.join(directory, name), encoding="utf-8") as fh:
            return fh.read()
    auth_path = os.path.join(directory, "authkeys")
    return text("ha.cf"), (text("authkeys") if os.path.exists(auth_path) else None), text("haresources")
