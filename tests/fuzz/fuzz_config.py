"""Fuzz target of the config loader: load_text on documents built from the schema.

A document is a dict built from the key lists of vmacd/config (GLOBAL_KEYS, INSTANCE_KEYS,
RESOURCE_KEYS, ...): each key gets a value valid for it most of the time, and otherwise a value of
another type, out of range or nested junk; unknown keys, typos and wrong table shapes are mixed
in. The dict is written as TOML by our own small writer (with dotted keys, inline tables and
array-of-tables picked at random), then a third of the texts get raw line or character edits.

Oracle: `Config` or `ConfigError`, nothing else. Every issue is one line `FILE: PATH: MESSAGE`
whose PATH is a TOML location or a key path (TOML syntax: bare or quoted keys, [index]). An
accepted config loads again equal, keeps the cross-instance promises (unique names, VRIDs per
interface and family, VIPs) and gives every instance `RouterParams` the state machine accepts.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import random
import re
import shutil
import tempfile

from fuzzcore import Finding, expect

from vmacd.config import load as cfg_load
from vmacd.config import model
from vmacd.config.instance import INSTANCE_KEYS
from vmacd.config.reader import ConfigError, ConfigIssue
from vmacd.core.params import RouterParams

NAMES = ["lan", "wan", "a", "b-1", "x.y", "", "-bad", "a b", "é", "n" * 33, "lan2", "0"]
IFACES = ["eth0", "eth1", "br-lan", "", "a/b", "x" * 16, ".", "eth0:1", "lo"]
V4 = ["192.0.2.1", "192.0.2.2/24", "198.51.100.7/32", "203.0.113.9", "0.0.0.0", "224.0.0.18",
      "127.0.0.1", "192.0.2.300", "192.0.2.1/33", "1.2.3.4/255.255.0.0"]
V6 = ["fe80::1", "fe80::2/64", "2001:db8::1", "2001:db8::1/64", "ff02::12", "::", "fe80::1%eth0",
      "2001:db8::zz"]
DURATIONS = ["0s", "1s", "100ms", "10ms", "1.5s", "40.95s", "41s", "255s", "256s", "1m30s", "1h",
             "5ms", "0.001s", "-1s", "", "1", "1 s", "1.0000001s", "1.00000000000000000000000000001s",
             "9" * 40 + "s", "2h", "86400s", "86401s", "0.5s", "3s", "1S", "1ms1s"]
PATHS = ["/usr/bin/true", "/bin/sh", "relative/path", "", "/", "/tmp/x\u0000y", "/etc/vmacd/k"]
KEYS_TEXT = ["pw", "12345678", "123456789", "", "k" * 16, "k" * 32, "k" * 64, "k" * 65, "é" * 8]


def junk(rng: random.Random, depth: int = 0) -> object:
    r = rng.random()
    if depth > 2 or r < 0.6:
        return rng.choice([0, -1, 1, 256, 2**63 - 1, -(2**63), 1.5, float("inf"), float("nan"), -0.0,
                           True, False, "", "x", "\n", "\t", "\u0000", "\ud7ff\ue000", "[]", "{}"])
    if r < 0.8:
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(NAMES + ["name", "weight", "type"]): junk(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def typo(rng: random.Random, key: str) -> str:
    i = rng.randrange(len(key) + 1)
    op = rng.random()
    if op < 0.3:
        return key[:i] + rng.choice("abcxyz_-. ") + key[i:]
    if op < 0.6:
        return key[:i] + key[i + 1:] or "k"
    if op < 0.8:
        return key.upper()
    return rng.choice(["", " ", "a.b", "\u00e9", "[x]", "x\ny", key + "s"])


def _vips(rng: random.Random) -> list[str]:
    pool = V4 if rng.random() < 0.6 else V6
    n = rng.choice((0, 1, 1, 2, 3))
    out = [rng.choice(pool) for _ in range(n)]
    if pool is V6 and out and rng.random() < 0.7:
        out[0] = "fe80::1"
    if rng.random() < 0.05:
        out = [f"192.0.2.{i % 250 + 1}" for i in range(rng.choice((255, 256)))]
    return out


def _weighted_list(rng: random.Random, names: list[str], key: str, default: object) -> list:
    out = []
    for _ in range(rng.randint(0, 3)):
        item = {key: rng.choice(names)} if rng.random() < 0.9 else {}
        if rng.random() < 0.7:
            item["weight"] = rng.choice((default, -254, 254, 255, -255, 0, 10, "10", 1.5, True))
        if rng.random() < 0.05:
            item[typo(rng, "weight")] = 1
        out.append(item if rng.random() < 0.95 else junk(rng))
    return out


class Schema:
    """Valid-looking values per key, given the names defined elsewhere in the document."""

    def __init__(self, rng: random.Random, names: dict[str, list[str]]) -> None:
        self.rng = rng
        self.names = names

    def value(self, key: str, table: str) -> object:
        rng = self.rng
        if rng.random() < 0.12:
            return junk(rng)
        gen = getattr(self, f"v_{table}_{key}", None) or getattr(self, f"v_{key}", None)
        return gen() if gen else rng.choice(("x", 1, True))

    # instance
    def v_name(self):
        return self.rng.choice(NAMES)

    def v_interface(self):
        return self.rng.choice(IFACES)

    def v_vrid(self):
        return self.rng.choice((1, 51, 255, 0, 256, -1, self.rng.randint(1, 255)))

    def v_version(self):
        return self.rng.choice((2, 3, 3, 4, 1))

    def v_priority(self):
        return self.rng.choice((0, 1, 100, 254, 255, 256, self.rng.randint(1, 255)))

    def v_virtual_ips(self):
        return _vips(self.rng)

    def v_unicast_peers(self):
        return [self.rng.choice(V4 + V6) for _ in range(self.rng.randint(0, 3))]

    def v_auth(self):
        return self.rng.choice(self.names["auth"] + ["nope", ""])

    def v_vmac_mode(self):
        return self.rng.choice(("bridge", "private", "passthru", ""))

    def v_graceful_handover(self):
        return self.rng.choice(("make-before-break", "rfc", "RFC"))

    def v_track_interfaces(self):
        return _weighted_list(self.rng, IFACES, "name", 0)

    def v_track_scripts(self):
        return _weighted_list(self.rng, self.names["track_script"] + ["nope"], "name", 0)

    def v_track_files(self):
        return _weighted_list(self.rng, PATHS, "path", 1)

    def v_resources(self):
        return [self.rng.choice(self.names["resource"] + ["nope"]) for _ in range(self.rng.randint(0, 3))]

    def v_garp_repeat(self):
        return self.rng.choice((1, 3, 100, 0, 101))

    def v_notify(self):
        return self.rng.choice(PATHS)

    def _argv(self):
        return [self.rng.choice(PATHS)] + ["arg"] * self.rng.randint(0, 2) if self.rng.random() < 0.9 else []

    v_notify_master = v_notify_backup = v_notify_fault = v_notify_stop = _argv
    v_command = v_start = v_stop = v_monitor = _argv

    def _duration(self):
        return self.rng.choice(DURATIONS)

    v_advert_interval = v_warn_after = v_preempt_delay = v_garp_refresh = v_startup_delay = _duration
    v_interval = v_timeout = v_monitor_interval = v_monitor_timeout = v_failure_timeout = _duration
    v_watchdog = _duration

    def _bool(self):
        return self.rng.choice((True, False))

    v_vmac = v_preempt = v_accept = v_v3_checksum_pseudoheader = v_v3_checksum_strict = _bool

    def _count(self):
        return self.rng.choice((1, 3, 100, 0, 101))

    v_rise = v_fall = v_monitor_fall = _count

    # global
    def v_global_node(self):
        return self.rng.choice(("node1", "", "  ", "n" * 300))

    def v_control_socket(self):
        return self.rng.choice(PATHS)

    v_state_dir = v_control_socket

    def v_metrics_listen(self):
        return self.rng.choice(("127.0.0.1:9650", "[::1]:9650", "", ":9650", "host:0", "host:65536",
                                "a:b", "[fe80::1]:1", "x" * 50 + ":80"))

    def v_log_format(self):
        return self.rng.choice(model.LOG_FORMATS + ("yaml",))

    def v_log_level(self):
        return self.rng.choice(model.LOG_LEVELS + ("trace", "INFO"))

    # auth, resource
    def v_type(self):
        return self.rng.choice(model.AUTH_TYPES + ("md5", "PASS"))

    def v_key(self):
        return self.rng.choice(KEYS_TEXT)

    def v_key_file(self):
        return self.rng.choice(("key32", "key-world", "key-empty", "missing", "/dev/null", "",
                                "a\u0000b", "sub/../key32"))

    def v_kind(self):
        return self.rng.choice(model.RESOURCE_KINDS + ("fs",))

    def v_device(self):
        return self.rng.choice(("/dev/sdb1", "UUID=1234", "LABEL=x", "nfs:/export", "nfs:export",
                                ":/x", "sdb1", ""))

    def v_mountpoint(self):
        return self.rng.choice(("/srv/data", "/", "//", "/srv/..", "srv", ""))

    def v_fstype(self):
        return self.rng.choice(("ext4", "xfs", "nfs4", "Ext4", "", "a" * 33, "fuse.sshfs"))

    def v_options(self):
        return self.rng.choice(("", "noatime,nodev", "rw, noatime", "\t"))

    def v_instances(self):
        return [self.rng.choice(self.names["instance"] + ["nope"]) for _ in range(self.rng.randint(0, 3))]


def _table(rng: random.Random, schema: Schema, keys: tuple[str, ...], table: str,
           required: tuple[str, ...] = ()) -> dict:
    chosen = [k for k in keys if k in required or rng.random() < 0.3]
    if rng.random() < 0.05:
        chosen = [k for k in chosen if k not in required]
    body = {k: schema.value(k, table) for k in chosen}
    for _ in range(rng.choice((0, 0, 0, 0, 1, 2))):
        body[typo(rng, rng.choice(keys))] = junk(rng)
    return body


def document(rng: random.Random) -> dict:
    names = {"auth": rng.sample(NAMES[:5], rng.randint(0, 2)),
             "track_script": rng.sample(NAMES[:5], rng.randint(0, 2)),
             "resource": rng.sample(NAMES[:5], rng.randint(0, 2)),
             "instance": []}
    schema = Schema(rng, names)
    n = rng.choice((0, 1, 1, 2, 2, 3, 4))
    instances = []
    for _ in range(n):
        inst = _table(rng, schema, INSTANCE_KEYS, "instance", ("name", "interface", "vrid", "virtual_ips"))
        if isinstance(inst.get("name"), str):
            names["instance"].append(inst["name"])
        instances.append(inst)
    doc: dict = {}
    if rng.random() < 0.5:
        doc["global"] = _table(rng, schema, cfg_load.GLOBAL_KEYS, "global")
    for top, keys, required in (("auth", cfg_load.AUTH_KEYS, ("type",)),
                                ("track_script", cfg_load.SCRIPT_KEYS, ("command",)),
                                ("resource", cfg_load.RESOURCE_KEYS, ()),
                                ("sync_group", ("instances",), ("instances",))):
        pool = names.get(top) or (rng.sample(NAMES, 1) if rng.random() < 0.3 else [])
        if pool:
            doc[top] = {name: _table(rng, schema, keys, top, required) for name in pool}
    doc["instance"] = instances
    r = rng.random()
    if r < 0.05:
        doc[rng.choice(cfg_load.TOP_KEYS)] = junk(rng)
    elif r < 0.1:
        doc[typo(rng, rng.choice(cfg_load.TOP_KEYS))] = junk(rng)
    elif r < 0.13:
        doc["instance"] = instances[0] if instances else {}
    return doc


def clean_document(rng: random.Random) -> dict:
    """A valid document (every key optional picked at random), then at most one poisoned value:
    the accept path and single, precise errors."""
    doc: dict = {}
    if rng.random() < 0.6:
        doc["global"] = _pick(rng, {"node": "r1", "control_socket": "/run/vmacd/x.sock",
                                    "metrics_listen": rng.choice(("127.0.0.1:9650", "", "[::1]:1")),
                                    "log_format": "json", "log_level": "debug", "watchdog": "10s",
                                    "state_dir": "/var/lib/vmacd", "notify": "/usr/bin/notify"})
    auths = {"h": {"type": "hmac-sha256", **rng.choice(({"key": "k" * 32}, {"key_file": "key32"}))},
             "p": {"type": "pass", "key": "pw"}, "a": {"type": "ah", "key": "secret"},
             "n": {"type": "none"}}
    doc["auth"] = dict(rng.sample(sorted(auths.items()), rng.randint(0, 4)))
    doc["track_script"] = {"chk": _pick(rng, {"interval": "2s", "timeout": "1s", "rise": 2, "fall": 3},
                                        {"command": ["/usr/bin/true", "-x"]})}
    fs = {"kind": "filesystem", "device": rng.choice(("/dev/sdb1", "UUID=1", "nfs:/export")),
          "mountpoint": "/srv/data", "fstype": "ext4", "options": "noatime"}
    cmd = {"start": ["/usr/bin/start"], "stop": ["/usr/bin/stop"], "monitor": ["/usr/bin/mon"]}
    doc["resource"] = {"r": _pick(rng, {"timeout": "30s", "monitor_interval": "5s", "monitor_fall": 2,
                                        "failure_timeout": "0s"}, rng.choice((fs, cmd)))}
    doc["instance"] = [_clean_instance(rng, i, doc) for i in range(rng.randint(1, 3))]
    if len(doc["instance"]) > 1 and rng.random() < 0.5:
        doc["sync_group"] = {"g": {"instances": [i["name"] for i in doc["instance"]]}}
    if rng.random() < 0.4:
        _poison(rng, doc)
    return doc


def _pick(rng: random.Random, optional: dict, required: dict | None = None) -> dict:
    return {**(required or {}), **{k: v for k, v in optional.items() if rng.random() < 0.5}}


def _clean_instance(rng: random.Random, i: int, doc: dict) -> dict:
    v6 = rng.random() < 0.3
    version = 3 if v6 or rng.random() < 0.7 else 2
    vips = [f"fe80::{i + 1:x}", f"2001:db8::{i + 1:x}/64"] if v6 else [f"192.0.2.{10 * i + k + 1}/24"
                                                                    for k in range(rng.randint(1, 3))]
    auth = [n for n, a in doc["auth"].items() if version == 2 or a["type"] in ("none", "hmac-sha256")]
    optional = {
        "version": version, "priority": rng.choice((1, 100, 254, 255)),
        "advert_interval": rng.choice(("1s", "3s", "255s") if version == 2 else ("10ms", "1s", "40.95s")),
        "warn_after": rng.choice(("0s", "1h")), "vmac": rng.random() < 0.5,
        "vmac_mode": rng.choice(model.VMAC_MODES), "preempt": rng.random() < 0.5,
        "preempt_delay": "5s", "accept": rng.random() < 0.5,
        "unicast_peers": ["fe80::200"] if v6 else ["192.0.2.200", "198.51.100.2"],
        "garp_repeat": rng.randint(1, 100), "garp_refresh": "60s", "startup_delay": "2s",
        "graceful_handover": rng.choice(model.HANDOVER_MODES),
        "track_interfaces": [{"name": "eth2", "weight": -50}],
        "track_scripts": [{"name": "chk", "weight": 10}], "track_files": [{"path": "/run/f", "weight": 2}],
        "resources": ["r"], "notify": "/usr/bin/notify", "notify_master": ["/usr/bin/x", "arg"],
        "notify_backup": ["/usr/bin/y"], "notify_fault": ["/usr/bin/z"], "notify_stop": ["/usr/bin/s"],
    }
    if version == 3:
        optional.update(v3_checksum_pseudoheader=rng.random() < 0.5, v3_checksum_strict=rng.random() < 0.5)
    if auth:
        optional["auth"] = rng.choice(auth)
    return _pick(rng, optional, {"name": f"vi{i}", "interface": rng.choice(("eth0", "eth1", "br-lan")),
                                 "vrid": 10 + i * 7, "virtual_ips": vips})


def _poison(rng: random.Random, doc: dict) -> None:
    tables = [("global", doc["global"])] if "global" in doc else []
    tables += [(top, t) for top in ("auth", "track_script", "resource") for t in doc[top].values()]
    tables += [("instance", t) for t in doc["instance"]]
    top, table = rng.choice(tables)
    keys = {"global": cfg_load.GLOBAL_KEYS, "auth": cfg_load.AUTH_KEYS, "resource": cfg_load.RESOURCE_KEYS,
            "track_script": cfg_load.SCRIPT_KEYS, "instance": INSTANCE_KEYS}[top]
    key = rng.choice(keys)
    schema = Schema(rng, {"auth": list(doc["auth"]), "track_script": ["chk"], "resource": ["r"],
                          "instance": [i["name"] for i in doc["instance"]]})
    table[key] = schema.value(key, top)


# ------------------------------------------------------------------ writing TOML

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def tkey(k: str) -> str:
    return k if _BARE.fullmatch(k) else tstr(k)


def tstr(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def tval(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == float("inf") else repr(v))
    if isinstance(v, str):
        return tstr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{tkey(k)} = {tval(x)}" for k, x in v.items()) + " }" if v else "{}"
    return "[" + ", ".join(tval(x) for x in v) + "]"


def to_toml(rng: random.Random, doc: dict) -> str:
    out = [f"{tkey(k)} = {tval(v)}" for k, v in doc.items()
           if not isinstance(v, dict)
           and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))]
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out += [f"[[{tkey(k)}]]"] + _body(rng, item)
        elif isinstance(v, dict):
            if v and all(isinstance(x, dict) for x in v.values()) and rng.random() < 0.8:
                for sub, body in v.items():
                    out += [f"[{tkey(k)}.{tkey(sub)}]"] + _body(rng, body)
            else:
                out += [f"[{tkey(k)}]"] + _body(rng, v)
    return "\n".join(out) + "\n"


def _body(rng: random.Random, table: dict) -> list[str]:
    lines = []
    for k, v in table.items():
        if isinstance(v, dict) and v and rng.random() < 0.3:      # dotted keys
            lines += [f"{tkey(k)}.{tkey(sk)} = {tval(sv)}" for sk, sv in v.items()]
        else:
            lines.append(f"{tkey(k)} = {tval(v)}")
    return lines


SNIPPETS = ["[global", "[[instance]]", "[instance]", "x = ", '"""', "'''", "a.b.c = 1", "= 1",
            "vrid = 1979-05-27T07:32:00Z", "t = 07:32:00", "[auth.lan]", "[auth]", "name = \"lan\"",
            "virtual_ips = [\"192.0.2.1\",]", "# comment", "\\", "\ufeff", "key = \"\\uD800\"",
            "inf = -inf", "vrid = 0x33", "vrid = 1_0", "vrid = +51", "priority = 1e2", "[[global]]"]


def mutate_text(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(lines))
        if op < 0.2:
            del lines[i]
            lines = lines or [""]
        elif op < 0.35:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.55:
            lines.insert(i, rng.choice(SNIPPETS))
        elif op < 0.8 and lines[i]:
            j = rng.randrange(len(lines[i]))
            c = rng.choice("[]{}\"'=.,#\\ \t\x00\x7fé1ax\r")
            lines[i] = lines[i][:j] + (c if rng.random() < 0.6 else "") + lines[i][j + 1:]
        else:
            lines = lines[:i + 1]
            lines[-1] = lines[-1][:rng.randint(0, len(lines[-1]))]
    return "\n".join(lines)


# ------------------------------------------------------------------ the oracle

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
PATH_RE = re.compile(rf"^{_KEY}(?:\.{_KEY}|\[[^\]\n]*\])*$")
TOML_WHERE = re.compile(r"^(line \d+, column \d+|end of document)$")


def _keydir() -> str:
    """A directory with the key files the documents name (built once per process)."""
    d = tempfile.mkdtemp(prefix="vmacd-fuzz-keys-")
    for name, data, mode in (("key32", b"k" * 32 + b"\n", 0o600), ("key-world", b"k" * 32, 0o644),
                             ("key-empty", b"", 0o600)):
        path = os.path.join(d, name)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, mode)
    return d


class ConfigTarget:
    name = "config"

    def __init__(self) -> None:
        self._dir: str | None = None

    def generate(self, rng: random.Random) -> dict:
        text = to_toml(rng, clean_document(rng) if rng.random() < 0.4 else document(rng))
        if rng.random() < 0.3:
            text = mutate_text(rng, text)
        return {"text": text, "read_files": rng.random() < 0.2}

    def check(self, case: dict) -> list[str]:
        if case["read_files"] and self._dir is None:
            self._dir = _keydir()
        source = os.path.join(self._dir, "vmacd.toml") if case["read_files"] else "/etc/vmacd/vmacd.toml"
        try:
            cfg = cfg_load.load_text(case["text"], source, read_files=case["read_files"])
        except ConfigError as exc:
            return check_error(exc, source)
        check_config(cfg, case, source)
        return ["config accepted"]

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def dump(self, case: dict) -> dict:
        return case

    def load(self, raw: dict) -> dict:
        return raw


def check_error(exc: ConfigError, source: str) -> list[str]:
    expect(exc.errors, "ConfigError without issues", str(exc))
    labels = []
    for issue in exc.errors:
        expect(isinstance(issue, ConfigIssue) and issue.source == source, "issue source", repr(issue))
        text = str(issue)
        expect("\n" not in text and "\r" not in text, "issue spans several lines", repr(text))
        expect(issue.path, "issue without a key path", text)
        expect(issue.message, "issue without a message", text)
        expect(text == f"{source}: {issue.path}: {issue.message}", "issue format", text)
        if issue.message.startswith("invalid TOML"):
            expect(TOML_WHERE.match(issue.path), "TOML error without a position", text)
            labels.append("invalid TOML")
            continue
        expect(PATH_RE.match(issue.path), "issue path is not a key path", text)
        labels.append(normal_path(issue.path))
    return labels


def normal_path(path: str) -> str:
    """instance[lan].track_scripts[2].weight -> instance[*].track_scripts[*].weight; names of
    [auth.NAME]-style tables -> *; unknown keys -> ?."""
    p = re.sub(r"\[[^\]]*\]", "[*]", path)
    parts = re.findall(_KEY + r"(?:\[\*\])*", p)
    if parts and parts[0] in ("auth", "track_script", "resource", "sync_group") and len(parts) > 1:
        parts[1] = "*"
    known = set(INSTANCE_KEYS) | set(cfg_load.GLOBAL_KEYS) | set(cfg_load.RESOURCE_KEYS) | \
        set(cfg_load.TOP_KEYS) | set(cfg_load.AUTH_KEYS) | set(cfg_load.SCRIPT_KEYS) | \
        {"instances", "name", "weight", "path", "*"}
    return ".".join(x if x.split("[")[0] in known else "?" for x in parts)


def check_config(cfg: model.Config, case: dict, source: str) -> None:
    again = cfg_load.load_text(case["text"], source, read_files=case["read_files"])
    expect(again == cfg, "two loads of one text differ", "")
    names, keys, vips = set(), set(), set()
    for inst in cfg.instances:
        expect(inst.name not in names, "duplicate instance name accepted", inst.name)
        expect(inst.key not in keys, "duplicate (interface, vrid, family) accepted", repr(inst.key))
        names.add(inst.name)
        keys.add(inst.key)
        for v in inst.virtual_ips:
            expect(v.ip not in vips, "VIP in two instances accepted", str(v.ip))
            vips.add(v.ip)
        primary = ipaddress.ip_address("192.0.2.250" if inst.family == 4 else "fe80::250")
        try:
            RouterParams(vrid=inst.vrid, primary=primary, vips=tuple(v.ip for v in inst.virtual_ips),
                         version=inst.version, priority=inst.priority,
                         interval_cs=inst.advert_interval_cs, preempt=inst.preempt,
                         preempt_delay=inst.preempt_delay, accept=inst.accept,
                         startup_delay=inst.startup_delay, garp_repeat=inst.garp_repeat,
                         graceful_handover=inst.graceful_handover, name=inst.name)
        except ValueError as exc:
            raise Finding("loaded instance refused by RouterParams", str(exc)) from None
    for g in cfg.sync_groups:
        expect(all(n in names for n in g.instances), "sync group names an unknown instance", repr(g))
