"""TOML text -> Config (docs/config.md). Collects every error, then raises ConfigError with all of them.

    load(path) -> Config                      reads the file; refuses an inline key in a
                                              world-readable file
    load_text(text, source) -> Config         `source` names the file in messages

`read_files=False` skips reading key files (and their permission check), for validating a
config on another box (`vmacd check --no-preflight`); the Auth then has key None.
`file_issues=[]` collects problems with key files and file modes there instead of refusing the
config (an unreadable key file then gives an Auth with key None), so `vmacd check` can report
them together with everything else.
"""
from __future__ import annotations

import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vmacd.config import model
from vmacd.config.emit import key as toml_key
from vmacd.config.instance import check_abs_path, check_name, parse_instance, program
from vmacd.config.reader import (
    ConfigError,
    ConfigIssue,
    Issues,
    Reader,
    did_you_mean,
    show,
)

__all__ = ["ConfigError", "ConfigIssue", "load", "load_text"]

TOP_KEYS = ("global", "auth", "instance", "track_script", "resource", "sync_group")
GLOBAL_KEYS = ("node", "control_socket", "metrics_listen", "notify", "log_format", "log_level",
               "watchdog", "state_dir", "realtime_priority")
AUTH_KEYS = ("type", "key", "key_file")
SCRIPT_KEYS = ("command", "interval", "timeout", "rise", "fall")
RESOURCE_KEYS = ("kind", "start", "stop", "timeout", "monitor", "monitor_interval", "monitor_timeout",
                 "monitor_fall", "failure_timeout", "device", "mountpoint", "fstype", "options")
FS_KEYS = ("device", "mountpoint", "fstype", "options")
_FSTYPE_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,31}$")
# key lengths in bytes per auth type: v2 carries 8 octets of password / AH key (keepalived's
# auth_pass limit); HMAC-SHA256 wants at least 128 bits and gains nothing past its 64-byte block.
KEY_LENGTHS = {"pass": (1, 8), "ah": (1, 8), "hmac-sha256": (16, 64)}
_TOML_POS = re.compile(r"^(.*) \(at (line \d+, column \d+|end of document)\)$", re.DOTALL)
_LISTEN_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def load(path: str, *, read_files: bool = True,
         file_issues: list[ConfigIssue] | None = None) -> model.Config:
    """Load and validate the config file at `path`. OSError when it cannot be read."""
    with open(path, "rb") as fh:
        raw = fh.read()
        mode = os.fstat(fh.fileno()).st_mode
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(path, "", f"not UTF-8 text: {exc}")]) from None
    return load_text(text, path, read_files=read_files, source_mode=mode, file_issues=file_issues)


def load_text(text: str, source: str = "<config>", *, read_files: bool = True,
              source_mode: int | None = None,
              file_issues: list[ConfigIssue] | None = None) -> model.Config:
    """Validate TOML text. `source` is the file name used in messages and to resolve key_file."""
    issues = Issues(source, file_items=file_issues)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.match(str(exc))
        where, msg = (m.group(2), m.group(1)) if m else ("", str(exc))
        raise ConfigError([ConfigIssue(source, where, f"invalid TOML: {msg}")]) from None
    base_dir = os.path.dirname(os.path.abspath(source)) if source and not source.startswith("<") else "/"
    top = Reader(issues, data, "", TOP_KEYS)
    glob = _global(Reader(issues, _table(top, "global"), "global", GLOBAL_KEYS))
    auths = _named(top, "auth", AUTH_KEYS,
                   lambda r, n: _auth(r, n, base_dir, read_files, source_mode))
    scripts = _named(top, "track_script", SCRIPT_KEYS, _script)
    resources = _named(top, "resource", RESOURCE_KEYS, _resource)
    raw_instances = _instance_tables(top)
    groups = _sync_groups(top, raw_instances)
    instances = []
    for i, item in enumerate(raw_instances):
        inst = parse_instance(issues, item, i, auths, scripts, resources)
        if inst is not None:
            instances.append(inst)
    _cross_check(issues, instances)
    if issues.items:
        raise ConfigError(issues.items)
    member_of = {name: g for g in groups for name in g.instances}
    instances = [_with_group(i, member_of.get(i.name)) for i in instances]
    return model.Config(global_=glob, instances=tuple(instances), auth=_valid(auths),
                        track_scripts=_valid(scripts), resources=_valid(resources),
                        sync_groups=tuple(groups), source=source)


def _valid(named: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(v for v in named.values() if v is not None)


def _with_group(inst: model.Instance, group: model.SyncGroup | None) -> model.Instance:
    return replace(inst, sync_group=group) if group else inst


def _table(top: Reader, key: str) -> dict[str, Any]:
    value = top.raw(key, {})
    if not isinstance(value, dict):
        top.error(key, f"must be a table [{key}], got {show(value)}")
        return {}
    return value


def _named(top: Reader, key: str, keys: tuple[str, ...],
           parse: Callable[[Reader, str], Any]) -> dict[str, Any]:
    """[key.NAME] tables -> {NAME: parse(reader, NAME)}; a bad table maps to None (already reported),
    so references to it do not report a second, misleading "no such table"."""
    out: dict[str, Any] = {}
    for name, body in _table(top, key).items():
        path = f"{key}.{toml_key(name)}"
        if check_name(name):
            top.issues.add(path, f"name {check_name(name)}, got {show(name)}")
            continue
        if not isinstance(body, dict):
            top.issues.add(path, f"must be a table [{path}], got {show(body)}")
            continue
        out[name] = parse(Reader(top.issues, body, path, keys), name)
    return out


def _instance_tables(top: Reader) -> list[dict[str, Any]]:
    value = top.raw("instance", [])
    if isinstance(value, dict):
        top.error("instance", "must be an array of tables: write [[instance]], not [instance]")
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        top.error("instance", "must be an array of tables [[instance]]")
        return []
    if not value:
        top.error("instance", "at least one [[instance]] is required")
    return value


def _global(r: Reader) -> model.Global:
    node = r.string("node", None, check=lambda v: None if v.strip() else "must not be empty")
    return model.Global(
        node=node or socket.gethostname(),
        control_socket=r.string("control_socket", model.DEFAULT_CONTROL_SOCKET, check=check_abs_path),
        metrics_listen=r.string("metrics_listen", model.DEFAULT_METRICS_LISTEN, check=_check_listen),
        notify=r.string("notify", None, check=check_abs_path),
        log_format=r.string("log_format", "text", model.LOG_FORMATS),
        log_level=r.string("log_level", "info", model.LOG_LEVELS),
        watchdog=r.seconds("watchdog", "0s"),
        state_dir=r.string("state_dir", model.DEFAULT_STATE_DIR, check=check_abs_path),
        realtime_priority=r.integer("realtime_priority", 0, 99, default=model.DEFAULT_RT_PRIORITY),
    )


def _check_listen(value: str) -> str | None:
    if value == "":
        return None
    m = _LISTEN_RE.match(value)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        return 'must be "HOST:PORT" (e.g. "127.0.0.1:9650", "[::1]:9650") or "" to disable'
    return None


def _auth(r: Reader, name: str, base_dir: str, read_files: bool,
          source_mode: int | None) -> model.Auth | None:
    kind = r.string("type", choices=model.AUTH_TYPES)
    has_key, has_file = r.has("key"), r.has("key_file")
    if kind is None:
        return None
    if kind == "none":
        for k in ("key", "key_file"):
            if r.has(k):
                r.error(k, "type none takes no key")
        return model.Auth(name, "none")
    if has_key == has_file:
        r.error("key" if has_key else "type",
                f"type {kind} needs exactly one of key or key_file" + (", got both" if has_key else ""))
        return None
    if has_key:
        text = r.string("key")
        if text is None:
            return None
        if source_mode is not None and source_mode & stat.S_IROTH and not r.issues.file_problem(
                r.at("key"), f"inline key in a world-readable file (mode {stat.S_IMODE(source_mode):04o}); "
                             "chmod o-r the config (chmod 600) or use key_file"):
            return None
        return _checked_key(r, name, kind, text.encode("utf-8"), "key", None)
    path = r.string("key_file")
    if path is None:
        return None
    path = os.path.normpath(os.path.join(base_dir, path))
    if not read_files:
        return model.Auth(name, kind, None, path)
    return _read_key_file(r, name, kind, path)


def _read_key_file(r: Reader, name: str, kind: str, path: str) -> model.Auth | None:
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            key = fh.read()
    except OSError as exc:
        if r.issues.file_problem(r.at("key_file"), f"cannot read {show(path)}: {exc.strerror}"):
            return model.Auth(name, kind, None, path)
        return None
    if mode & (stat.S_IROTH | stat.S_IWOTH) and not r.issues.file_problem(
            r.at("key_file"), f"{show(path)} is world-readable or -writable (mode "
                              f"{stat.S_IMODE(mode):04o}); chmod 600 it"):
        return None
    key = key.rstrip(b"\r\n")
    return _checked_key(r, name, kind, key, "key_file", path)


def _checked_key(r: Reader, name: str, kind: str, key: bytes, where: str,
                 path: str | None) -> model.Auth | None:
    lo, hi = KEY_LENGTHS[kind]
    if not lo <= len(key) <= hi:
        why = "the VRRPv2 field holds 8 bytes" if kind != "hmac-sha256" else "at least 128 bits"
        r.error(where, f"a {kind} key must be {lo}..{hi} bytes ({why}), got {len(key)} bytes")
        return None
    return model.Auth(name, kind, key, path)


def _script(r: Reader, name: str) -> model.TrackScript | None:
    command = program(r, "command", r.str_list("command", non_empty=True))
    interval = r.seconds("interval", "1s", positive=True)
    timeout = r.seconds("timeout", "1s", positive=True)
    rise = r.integer("rise", 1, 100, default=1)
    fall = r.integer("fall", 1, 100, default=1)
    if command is None:
        return None
    return model.TrackScript(name, command, interval, timeout, rise, fall)


def _resource(r: Reader, name: str) -> model.Resource | None:
    kind = r.string("kind", "command", model.RESOURCE_KINDS)
    timeout = r.seconds("timeout", "30s", positive=True)
    monitor_interval = r.seconds("monitor_interval", "10s", positive=True)
    monitor_timeout = r.seconds("monitor_timeout", "5s", positive=True)
    monitor_fall = r.integer("monitor_fall", 1, 100, default=1)
    failure_timeout = r.seconds("failure_timeout", "60s", hi_us=86_400_000_000)
    common = {"timeout": timeout, "monitor_interval": monitor_interval,
              "monitor_timeout": monitor_timeout, "monitor_fall": monitor_fall,
              "failure_timeout": failure_timeout}
    if kind == "filesystem":
        for key in ("start", "stop", "monitor"):
            if r.has(key):
                r.error(key, 'a kind = "filesystem" resource mounts, unmounts and checks the mount '
                             "itself; remove this key (or use kind = \"command\")")
        fs = _filesystem(r)
        if fs is None:
            return None
        return model.Resource(name, kind="filesystem", fs=fs, **common)
    for key in FS_KEYS:
        if r.has(key):
            r.error(key, 'only a kind = "filesystem" resource takes this key')
    start = program(r, "start", r.str_list("start", non_empty=True))
    stop = program(r, "stop", r.str_list("stop", non_empty=True))
    monitor = program(r, "monitor", r.str_list("monitor", (), non_empty=r.has("monitor")))
    if start is None or stop is None or monitor is None:
        return None
    return model.Resource(name, start, stop, monitor=monitor, **common)


def _filesystem(r: Reader) -> model.Filesystem | None:
    device = r.string("device", check=_check_device)
    mountpoint = r.string("mountpoint", check=_check_mountpoint)
    fstype = r.string("fstype", "auto", check=lambda v: None if _FSTYPE_RE.match(v) else
                      "must be a filesystem type such as ext4, xfs or nfs")
    options = r.string("options", "", check=lambda v: None if not any(c.isspace() for c in v)
                       else "must be mount options without spaces, e.g. \"noatime,nodev\"")
    if device is None or mountpoint is None:
        return None
    return model.Filesystem(device, os.path.normpath(mountpoint), fstype, options)


def _check_device(value: str) -> str | None:
    if value.startswith(("/", "UUID=", "LABEL=", "PARTUUID=")):
        return None
    host, sep, export = value.partition(":")
    if sep and host and export.startswith("/"):
        return None                      # NFS: host:/export
    return "must be a device path, UUID=..., LABEL=... or an NFS source host:/export"


def _check_mountpoint(value: str) -> str | None:
    if not value.startswith("/"):
        return "must be an absolute path"
    if os.path.normpath(value) == "/":
        return "must not be /"
    return None


def _sync_groups(top: Reader, raw_instances: list[dict[str, Any]]) -> list[model.SyncGroup]:
    known = [name for i in raw_instances if isinstance(name := i.get("name"), str)]
    seen: dict[str, str] = {}

    def parse(r: Reader, name: str) -> model.SyncGroup | None:
        members = r.str_list("instances", non_empty=True)
        for i, member in enumerate(members or ()):
            path = f"{r.at('instances')}[{i}]"
            if member not in known:
                top.issues.add(path, f"no [[instance]] named {show(member)}{did_you_mean(member, known)}")
            elif member in seen:
                top.issues.add(path, f"instance {show(member)} is already in sync_group {seen[member]}")
            else:
                seen[member] = name
        return model.SyncGroup(name, members) if members else None

    return list(_valid(_named(top, "sync_group", ("instances",), parse)))


def _cross_check(issues: Issues, instances: list[model.Instance]) -> None:
    """Names unique; (interface, vrid, family) unique; a VIP held by one instance only."""
    names: dict[str, int] = {}
    keys: dict[tuple[str, int, int], str] = {}
    vips: dict[Any, str] = {}
    for inst in instances:
        label = f"instance[{inst.name}]"
        if inst.name in names:        # and go on: its VRID and VIPs may clash as well
            issues.add(f"{label}.name", f"duplicate name, got {show(inst.name)}")
        names[inst.name] = 1
        if inst.key in keys:
            issues.add(f"{label}.vrid", f"{inst.interface} already has VRID {inst.vrid} for "
                                        f"IPv{inst.family} (instance[{keys[inst.key]}]), got {inst.vrid}")
        keys.setdefault(inst.key, inst.name)
        for vip in inst.virtual_ips:
            if vip.ip in vips:
                issues.add(f"{label}.virtual_ips", f"{vip.ip} is already a VIP of "
                                                   f"instance[{vips[vip.ip]}]")
            vips.setdefault(vip.ip, inst.name)
