"""keepalived.conf (vrrp_instance / vrrp_script / vrrp_track_file / vrrp_sync_group) -> vmacd config.

The keepalived syntax is parsed into a small tree of statements (`Stmt`: keyword, arguments,
optional block). Each statement is translated or listed in `notes` as not translated: the user
sees every line that did not make it, on stderr.

Defaults that differ: keepalived uses VRRPv2 (`vrrp_version 2`) and no vMAC unless `use_vmac`;
the output states `version` and `vmac` explicitly so behaviour does not change by accident.
Accept mode is keepalived's default as it is vmacd's; `vrrp_strict` and `no_accept` turn it off.

Commands: `notify_master/backup/fault/stop` (of an instance, or of a sync group, given to its
first member) keep their names as argv keys; the generic `notify` keeps vmacd's `notify` (the same
`TYPE NAME STATE PRIORITY` arguments). A script string with shell syntax (keepalived 1.x ran
scripts through /bin/sh) becomes `/bin/sh -c STRING`, with a note; a plain one is split in words.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from vmacd.config import durations
from vmacd.config.importing import Imported, command, is_shell, safe_name


@dataclass
class Stmt:
    word: str
    args: list[str]
    line: int
    block: list[Stmt] | None = None

    def text(self) -> str:
        return " ".join([self.word, *self.args]) + (" { ... }" if self.block is not None else "")


_TOKEN = re.compile(r'"([^"]*)"|(\{|\})|([^\s{}"]+)')


def parse(text: str) -> list[Stmt]:
    """keepalived.conf -> statements. Comments start with # or !; braces open and close blocks."""
    tokens: list[tuple[int, str]] = []       # (line, token); "\n" ends a statement
    for no, line in enumerate(text.splitlines(), 1):
        line = re.split(r"[#!]", line, maxsplit=1)[0] if '"' not in line else _strip_comment(line)
        for m in _TOKEN.finditer(line):
            tokens.append((no, m.group(1) if m.group(1) is not None else m.group(2) or m.group(3)))
        tokens.append((no, "\n"))
    stmts, _ = _block(tokens, 0)
    return stmts


def _strip_comment(line: str) -> str:
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch in "#!" and not quoted:
            return line[:i]
    return line


def _block(tokens: list[tuple[int, str]], pos: int) -> tuple[list[Stmt], int]:
    out: list[Stmt] = []
    words: list[str] = []
    line = 0
    while pos < len(tokens):
        no, tok = tokens[pos]
        pos += 1
        if tok == "}":
            if words:
                out.append(Stmt(words[0], words[1:], line))
            return out, pos
        if tok == "{":
            children, pos = _block(tokens, pos)
            out.append(Stmt(words[0] if words else "", words[1:], line or no, children))
            words = []
        elif tok == "\n":
            if words:
                out.append(Stmt(words[0], words[1:], line))
            words = []
        else:
            if not words:
                line = no
            words.append(tok)
    if words:
        out.append(Stmt(words[0], words[1:], line))
    return out, pos


@dataclass
class _Ctx:
    notes: list[str] = field(default_factory=list)
    version: int = 2
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    script_weights: dict[str, int] = field(default_factory=dict)
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    auth: dict[str, dict[str, Any]] = field(default_factory=dict)
    strict: bool = False
    group_notify: dict[str, dict[str, Any]] = field(default_factory=dict)   # group -> notify keys

    def skip(self, stmt: Stmt, why: str = "not translated") -> None:
        self.notes.append(f"line {stmt.line}: {stmt.text()}: {why}")


def import_keepalived(text: str) -> Imported:
    ctx = _Ctx()
    stmts = parse(text)
    doc: dict[str, Any] = {}
    for stmt in stmts:                       # globals and scripts first: instances refer to them
        if stmt.word == "global_defs":
            _global_defs(stmt, ctx, doc)
        elif stmt.word == "vrrp_script":
            _script(stmt, ctx)
        elif stmt.word == "vrrp_track_file":
            _track_file(stmt, ctx)
    instances, groups = [], {}
    for stmt in stmts:
        if stmt.word == "vrrp_instance":
            inst = _instance(stmt, ctx)
            if inst:
                instances.append(inst)
        elif stmt.word == "vrrp_sync_group":
            gname = safe_name(stmt.args[0] if stmt.args else "group")
            members = _sync_group(stmt, gname, ctx)
            if members:
                groups[gname] = {"instances": members}
        elif stmt.word not in ("global_defs", "vrrp_script", "vrrp_track_file"):
            ctx.skip(stmt)
    if ctx.auth:
        doc["auth"] = ctx.auth
    doc["instance"] = instances
    if ctx.scripts:
        doc["track_script"] = ctx.scripts
    names = {i["name"] for i in instances}
    for gname, group in list(groups.items()):
        missing = [m for m in group["instances"] if m not in names]
        if missing:
            ctx.notes.append(f"vrrp_sync_group {gname}: members {', '.join(missing)} were not translated; "
                             "left out of the group")
            group["instances"] = [m for m in group["instances"] if m in names]
        if not group["instances"]:
            del groups[gname]
        else:
            _group_notify(gname, group["instances"][0], instances, ctx)
    if groups:
        doc["sync_group"] = groups
    return Imported(doc, ctx.notes)


def _global_defs(stmt: Stmt, ctx: _Ctx, doc: dict[str, Any]) -> None:
    for sub in stmt.block or []:
        if sub.word == "router_id" and sub.args:
            doc["global"] = {"node": sub.args[0]}
        elif sub.word == "vrrp_version" and sub.args in (["2"], ["3"]):
            ctx.version = int(sub.args[0])
        elif sub.word == "vrrp_strict":
            ctx.strict = True
            ctx.skip(sub, "accept = false on every instance (strict mode drops traffic to the VIPs, "
                          "the RFC default); its other checks are not translated")
        else:
            ctx.skip(sub)


def _seconds(stmt: Stmt) -> str:
    return durations.format_us(durations.parse_us(stmt.args[0] + "s"))


def _script(stmt: Stmt, ctx: _Ctx) -> None:
    name = safe_name(stmt.args[0]) if stmt.args else "script"
    body: dict[str, Any] = {}
    for sub in stmt.block or []:
        try:
            if sub.word == "script":
                body["command"] = command(" ".join(sub.args), f"line {sub.line}: vrrp_script {name}",
                                          ctx.notes)
            elif sub.word in ("interval", "timeout"):
                body[sub.word] = _seconds(sub)
            elif sub.word in ("rise", "fall"):
                body[sub.word] = int(sub.args[0])
            elif sub.word == "weight":
                ctx.script_weights[name] = int(sub.args[0])
            else:
                ctx.skip(sub)
        except (ValueError, IndexError, durations.DurationError):
            ctx.skip(sub, "unreadable value, not translated")
    if "command" not in body:
        ctx.skip(stmt, "no script line, not translated")
        return
    ctx.scripts[name] = body


def _track_file(stmt: Stmt, ctx: _Ctx) -> None:
    name = stmt.args[0] if stmt.args else ""
    path, weight = None, 1
    for sub in stmt.block or []:
        if sub.word == "file" and sub.args:
            path = sub.args[0]
        elif sub.word == "weight" and sub.args and re.fullmatch(r"-?\d+", sub.args[0]):
            weight = int(sub.args[0])
        else:
            ctx.skip(sub)
    if path:
        ctx.files[name] = (path, weight)
    else:
        ctx.skip(stmt, "no file line, not translated")


def _sync_group(stmt: Stmt, gname: str, ctx: _Ctx) -> list[str]:
    members: list[str] = []
    for sub in stmt.block or []:
        if sub.word == "group":
            members += [safe_name(s.word) for s in sub.block or []] + [safe_name(a) for a in sub.args]
            members += [safe_name(a) for s in sub.block or [] for a in s.args]
        elif sub.word in _NOTIFY or sub.word == "notify":
            keys = ctx.group_notify.setdefault(gname, {})
            _notify_line(sub, keys, ctx, f"vrrp_sync_group {gname}")
        else:
            ctx.skip(sub)
    return members


def _group_notify(gname: str, first: str, instances: list[dict[str, Any]], ctx: _Ctx) -> None:
    """vmacd has no group-level notify: the group's scripts go to its first member, which moves
    with the group."""
    inst = next(i for i in instances if i["name"] == first)
    for key, value in ctx.group_notify.get(gname, {}).items():
        if key in inst:
            ctx.notes.append(f"vrrp_sync_group {gname}: {key} not translated: instance {first} "
                             f"has its own {key}")
            continue
        inst[key] = value
        ctx.notes.append(f"vrrp_sync_group {gname}: {key} -> {key} of instance {first}, the group's "
                         "first member (the group moves together; "
                         + ("TYPE is INSTANCE, not GROUP)" if key == "notify" else "it runs once)"))


def _weighted(stmt: Stmt) -> list[tuple[str, int | None]]:
    """Lines of a track_* block: NAME [weight N]."""
    out = []
    for sub in stmt.block or []:
        weight = int(sub.args[1]) if len(sub.args) >= 2 and sub.args[0] == "weight" else None
        out.append((sub.word, weight))
    return out


_SIMPLE_INT = {"virtual_router_id": "vrid", "priority": "priority", "garp_master_repeat": "garp_repeat"}
_SECONDS = {"preempt_delay": "preempt_delay", "garp_master_refresh": "garp_refresh"}


def _instance(stmt: Stmt, ctx: _Ctx) -> dict[str, Any] | None:
    name = safe_name(stmt.args[0]) if stmt.args else "vrrp"
    inst: dict[str, Any] = {"name": name}
    raw: dict[str, Any] = {"version": ctx.version, "vmac": False, "vips": []}
    for sub in stmt.block or []:
        try:
            _instance_line(sub, inst, raw, ctx)
        except (ValueError, IndexError, durations.DurationError):
            ctx.skip(sub, "unreadable value, not translated")
    return _finish(stmt, inst, raw, ctx)


def _instance_line(sub: Stmt, inst: dict[str, Any], raw: dict[str, Any], ctx: _Ctx) -> None:
    w = sub.word
    if w in _SIMPLE_INT:
        inst[_SIMPLE_INT[w]] = int(sub.args[0])
    elif w in _SECONDS:
        inst[_SECONDS[w]] = _seconds(sub)
    elif w == "interface":
        inst["interface"] = sub.args[0]
    elif w == "version":
        raw["version"] = int(sub.args[0])
    elif w == "advert_int":
        raw["advert_us"] = durations.parse_us(sub.args[0] + "s")
    elif w == "state":
        ctx.skip(sub, "not needed: vmacd elects the master by priority")
    elif w == "virtual_ipaddress":
        raw["vips"] += _vips(sub, inst, ctx)
    elif w in ("nopreempt", "accept", "no_accept"):
        inst["preempt" if w == "nopreempt" else "accept"] = w == "accept"
    elif w == "use_vmac":
        raw["vmac"] = True
        if sub.args:
            ctx.skip(sub, f"vmacd names the vMAC device itself; {sub.args[0]} not used")
    elif w == "unicast_peer":
        inst["unicast_peers"] = [s.word for s in sub.block or []]
    elif w == "authentication":
        raw["auth"] = {s.word: s.args[0] for s in sub.block or [] if s.args}
    elif w in ("track_interface", "track_script", "track_file"):
        _tracking(sub, inst, ctx)
    elif w in _NOTIFY or w == "notify":
        _notify_line(sub, inst, ctx, f"vrrp_instance {inst['name']}")
    else:
        ctx.skip(sub)


_NOTIFY = ("notify_master", "notify_backup", "notify_fault", "notify_stop")


def _notify_line(sub: Stmt, keys: dict[str, Any], ctx: _Ctx, owner: str) -> None:
    """notify_STATE "COMMAND" -> notify_STATE = argv; notify PATH -> notify (same arguments
    convention: TYPE NAME STATE PRIORITY appended)."""
    text = " ".join(sub.args)
    if not text:
        ctx.skip(sub, "no command, not translated")
    elif sub.word in _NOTIFY:
        keys[sub.word] = command(text, f"line {sub.line}: {owner} {sub.word}", ctx.notes, absolute=True)
    elif is_shell(text) or len(shlex.split(text)) != 1 or not text.startswith("/"):
        ctx.skip(sub, "not translated: vmacd's notify is the absolute path of one program, run "
                      "with TYPE NAME STATE PRIORITY as keepalived does; put the arguments or the "
                      "shell line in a wrapper script, or use notify_master/backup/fault/stop")
    else:
        keys["notify"] = text


def _vips(sub: Stmt, inst: dict[str, Any], ctx: _Ctx) -> list[str]:
    out = []
    for line in sub.block or []:
        try:
            vip = ipaddress.ip_interface(line.word)
        except ValueError:
            ctx.skip(line, "not an address, not translated")
            continue
        out.append(str(vip))
        opts = dict(zip(line.args[::2], line.args[1::2], strict=False))
        if opts.get("dev") and opts["dev"] != inst.get("interface"):
            ctx.skip(line, f"dev {opts['dev']}: vmacd puts every VIP on the instance's vMAC device")
        elif set(opts) - {"dev"}:
            ctx.skip(line, f"options {' '.join(line.args)} not translated; address kept")
    return out


def _tracking(sub: Stmt, inst: dict[str, Any], ctx: _Ctx) -> None:
    for name, weight in _weighted(sub):
        if sub.word == "track_interface":
            inst.setdefault("track_interfaces", []).append({"name": name, "weight": weight or 0})
        elif sub.word == "track_script":
            sname = safe_name(name)
            if sname not in ctx.scripts:
                ctx.skip(sub, f"vrrp_script {name} was not translated; tracking of it dropped")
                continue
            w = weight if weight is not None else ctx.script_weights.get(sname, 0)
            inst.setdefault("track_scripts", []).append({"name": sname, "weight": w})
        elif name in ctx.files:
            path, fweight = ctx.files[name]
            inst.setdefault("track_files", []).append(
                {"path": path, "weight": weight if weight is not None else fweight})
        else:
            ctx.skip(sub, f"vrrp_track_file {name} was not translated; tracking of it dropped")


def _finish(stmt: Stmt, inst: dict[str, Any], raw: dict[str, Any], ctx: _Ctx) -> dict[str, Any] | None:
    where = f"vrrp_instance {inst['name']} (line {stmt.line})"
    vips: list[str] = raw["vips"]
    missing = [k for k in ("interface", "vrid") if k not in inst] + ([] if vips else ["virtual_ipaddress"])
    if missing:
        ctx.notes.append(f"{where}: no {', '.join(missing)}; instance not translated")
        return None
    fam = ipaddress.ip_interface(vips[0]).version
    other = [v for v in vips if ipaddress.ip_interface(v).version != fam]
    if other:
        ctx.notes.append(f"{where}: {', '.join(other)} not translated: one address family per instance")
        vips = [v for v in vips if v not in other]
    version, advert_us = raw["version"], raw.get("advert_us", 1_000_000)
    if version == 2 and (fam == 6 or advert_us % 1_000_000):
        ctx.notes.append(f"{where}: VRRPv2 carries only IPv4 and whole seconds; written as version 3")
        version = 3
    if fam == 6:
        vips = _ipv6_list(vips, inst, where, ctx)
    cs = max(1, min(4095, round(advert_us / 10_000)))
    if cs * 10_000 != advert_us:
        ctx.notes.append(f"{where}: advert_int rounded to {durations.format_us(cs * 10_000)}")
    out = {"name": inst.pop("name"), "interface": inst.pop("interface"), "vrid": inst.pop("vrid"),
           "version": version, "advert_interval": durations.format_us(cs * 10_000),
           "virtual_ips": vips, "vmac": raw["vmac"]}
    out.update(inst)
    if ctx.strict and "accept" not in out:
        out["accept"] = False
    if "auth" in raw:
        _auth(out, raw["auth"], version, where, ctx)
    return out


def _ipv6_list(vips: list[str], inst: dict[str, Any], where: str, ctx: _Ctx) -> list[str]:
    """keepalived's IPv6 list, kept as the same set: its peers drop adverts whose list differs
    from theirs (count, or a missing address; order does not matter to them)."""
    ll = [v for v in vips if ipaddress.ip_interface(v).ip.is_link_local]
    if ll:
        if vips[0] != ll[0]:
            ctx.notes.append(f"{where}: {ll[0]} moved first (RFC 9568 §5.2.9; keepalived ignores the order)")
        return [ll[0]] + [v for v in vips if v != ll[0]]
    inst["ipv6_link_local_first"] = False
    ctx.notes.append(f"{where}: no link-local address in the IPv6 list: kept as keepalived lists it, "
                     "with ipv6_link_local_first = false, because keepalived peers drop adverts whose "
                     "address list differs from their own; for RFC 9568 §5.2.9 add e.g. "
                     f"fe80::1:{inst['vrid']:x}/64 first here and on every keepalived peer")
    return vips


def _auth(out: dict[str, Any], auth: dict[str, str], version: int, where: str, ctx: _Ctx) -> None:
    kind = {"PASS": "pass", "AH": "ah"}.get(auth.get("auth_type", "").upper())
    key = auth.get("auth_pass", "")
    if version == 3 or kind is None or not key:
        ctx.notes.append(f"{where}: authentication not translated (VRRPv3 has none, or it is incomplete); "
                         "consider an [auth] table of type hmac-sha256")
        return
    if len(key.encode()) > 8:
        ctx.notes.append(f"{where}: auth_pass cut to 8 bytes, as keepalived does")
        key = key.encode()[:8].decode(errors="ignore")
    ctx.auth[out["name"]] = {"type": kind, "key": key}
    out["auth"] = out["name"]
