"""Fuzz targets of the importers: import_heartbeat and import_keepalived on mutated inputs.

Inputs are written from the directives each importer knows (ha.cf, authkeys, haresources;
keepalived.conf blocks) with random, boundary and junk arguments, starting from the seed files in
tests/unit/data, then edited by whole lines, tokens, braces and characters.

Oracle: an `Imported` (a dict document and a list of string notes), never an exception; the
document writes as TOML (config/emit.py) that parses back to the same document, and
load_text on it gives a Config or a ConfigError whose issues all name a key path. Whether the
translation is a valid config is an outcome (the CLI exits 1 then), not a finding.
"""
from __future__ import annotations

import math
import pathlib
import random
import tomllib

from fuzz_config import check_error, normal_path
from fuzzcore import Finding, expect

from vmacd.config import emit
from vmacd.config.import_heartbeat import Imported, import_heartbeat
from vmacd.config.import_keepalived import import_keepalived
from vmacd.config.importing import Unusable
from vmacd.config.load import load_text
from vmacd.config.reader import ConfigError

DATA = pathlib.Path(__file__).resolve().parents[1] / "unit" / "data"
SEED_HB = {n: (DATA / "heartbeat-seed" / n).read_text() for n in ("ha.cf", "authkeys", "haresources")}
SEED_KA = (DATA / "keepalived" / "keepalived.conf").read_text()

WORDS = ["", "0", "1", "-1", "2", "0.5", "1.5", "10ms", "500ms", "255", "256", "4096", "99999999999",
         "on", "off", "legacy", "eth0", "eth1", "br0", "lo", "192.0.2.1", "192.0.2.1/24",
         "192.0.2.1/99", "2001:db8::1", "2001:db8::1/64", "fe80::1", "fe80::1/200", "x", "\"",
         "{", "}", "#", "!", "\\", "::", "/", "é", "١٢", "²", "node1", "node2", "a" * 40]


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


# ------------------------------------------------------------------ Heartbeat

HACF = ["keepalive", "warntime", "deadtime", "initdead", "bcast", "mcast", "ucast", "node",
        "auto_failback", "ping", "udpport", "logfacility", "crm", "respawn", "baud", "unknown_word"]
AGENTS = ["IPaddr", "IPaddr2", "IPv6addr", "Filesystem", "drbddisk", "httpd", "apache", "MailTo",
          "../../bin/sh", "x y", "", "-", "."]


def _hacf(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 12)):
        word = rng.choice(HACF)
        args = [_word(rng) for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))]
        lines.append(" ".join([word, *args]) + rng.choice(("", "", " # c", " \\")))
    return "\n".join(lines)


def _authkeys(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    lines = [f"auth {rng.choice(('1', '2', '3', 'x', ''))}"]
    for n in rng.sample(("1", "2", "3"), rng.randint(0, 3)):
        method = rng.choice(("md5", "sha1", "crc", "MD5", "des", ""))
        lines.append(f"{n} {method} {rng.choice(('key', 'a b c', '', 'é' * 9, _word(rng)))}")
    rng.shuffle(lines)
    return "\n".join(lines)


def _resource_token(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        addr = rng.choice(("192.0.2.10", "198.51.100.5", "2001:db8::10", "fe80::5", "bad", ""))
        spec = "/".join([addr] + [_word(rng) for _ in range(rng.choice((0, 1, 2, 3)))])
        return rng.choice((spec, f"IPaddr::{spec}", f"IPaddr2::{spec}", f"IPv6addr::{spec}"))
    return "::".join([rng.choice(AGENTS)] + [_word(rng) for _ in range(rng.choice((0, 1, 2)))])


def _haresources(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 4)):
        node = rng.choice(("node1", "node2", "linux-ha-a", _word(rng)))
        lines.append(" ".join([node] + [_resource_token(rng) for _ in range(rng.randint(0, 5))]))
    return "\n".join(lines)


def edit_lines(rng: random.Random, text: str, tokens: list[str]) -> str:
    lines = text.split("\n")
    for _ in range(rng.choice((0, 1, 1, 2, 4))):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.2:
            del lines[i]
            lines = lines or [""]
        elif op < 0.35:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.55:
            lines.insert(i, rng.choice(tokens))
        elif op < 0.8 and lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + rng.choice(tokens + ["", " ", "\t", "\r", "\x00"]) + lines[i][j + 1:]
        else:
            words = lines[i].split(" ")
            words.insert(rng.randint(0, len(words)), rng.choice(tokens))
            lines[i] = " ".join(words)
    return "\n".join(lines)


class Heartbeat:
    name = "import-heartbeat"

    def generate(self, rng: random.Random) -> dict:
        seed = rng.random() < 0.3
        hacf = SEED_HB["ha.cf"] if seed else _hacf(rng)
        keys = SEED_HB["authkeys"] if seed else _authkeys(rng)
        res = SEED_HB["haresources"] if seed else _haresources(rng)
        tokens = WORDS + HACF + AGENTS
        if rng.random() < 0.5:
            hacf = edit_lines(rng, hacf, tokens)
        if keys is not None and rng.random() < 0.3:
            keys = edit_lines(rng, keys, tokens)
        if rng.random() < 0.5:
            res = edit_lines(rng, res, tokens + [_resource_token(rng)])
        node = rng.choice((None, None, "node1", "linux-ha-a", "", "nobody"))
        return {"hacf": hacf, "authkeys": keys, "haresources": res, "node": node}

    def check(self, case: dict) -> list[str]:
        try:
            result = import_heartbeat(case["hacf"], case["authkeys"], case["haresources"],
                                      node=case["node"])
        except Unusable as exc:         # documented: `--node` names no node of ha.cf (exit 2)
            expect(bool(str(exc)) and "\n" not in str(exc), "Unusable without a one-line message",
                   repr(exc))
            return ["unusable: --node"]
        return check_imported(result)

    def dump(self, case: dict) -> dict:
        return case

    def load(self, raw: dict) -> dict:
        return raw


# ------------------------------------------------------------------ keepalived

INST_LINES = [
    "state MASTER", "state BACKUP", "interface {w}", "virtual_router_id {w}", "priority {w}",
    "advert_int {w}", "nopreempt", "accept", "no_accept", "use_vmac", "use_vmac {w}", "version {w}",
    "preempt_delay {w}", "garp_master_repeat {w}", "notify {w}", "notify \"{w} {w}\"",
    "notify_master {w}", "smtp_alert", "dont_track_primary", "{w} {w}",
]
BLOCKS = ["virtual_ipaddress", "virtual_ipaddress_excluded", "unicast_peer", "authentication",
          "track_interface", "track_script", "track_file"]


def _ka_block(rng: random.Random, name: str) -> list[str]:
    out = [f"    {name} {{"]
    for _ in range(rng.randint(0, 4)):
        if name == "authentication":
            key = rng.choice(("auth_type", "auth_pass"))         # drawn first: the seeds replay
            value = rng.choice(("PASS", "AH", "pass", "none", "1111", "123456789", "é" * 5, _word(rng)))
            out.append(f"        {key} {value}")
        elif name.startswith("virtual_ipaddress"):
            addr = rng.choice(("192.0.2.16/24", "192.0.2.17", "2001:db8::10/64", "fe80::10", _word(rng)))
            opts = rng.choice(("", " dev eth0", " dev eth9", " label eth0:1", " dev", " scope link"))
            out.append(f"        {addr}{opts}")
        elif name.startswith("track"):
            out.append(f"        {rng.choice(('eth1', 'chk', 'load', 'nope', _word(rng)))}"
                       f"{rng.choice(('', ' weight -30', ' weight', ' weight x', ' weight 300'))}")
        else:
            out.append(f"        {rng.choice(('192.0.2.2', '2001:db8::2', _word(rng)))}")
    return out + ["    }"]


def _keepalived(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.5:
        lines += ["global_defs {", f"   router_id {_word(rng)}", f"   vrrp_version {_word(rng)}", "}"]
    for name in rng.sample(("chk", "other"), rng.randint(0, 2)):
        script = rng.choice(("/bin/true", "x y", "", _word(rng)))
        lines += [f"vrrp_script {name} {{", f'    script "{script}"']
        keys = rng.sample(("interval", "timeout", "weight", "rise", "fall"), 3)
        lines += [f"    {k} {_word(rng)}" for k in keys]
        lines.append("}")
    if rng.random() < 0.3:
        lines += ["vrrp_track_file load {", f"    file {_word(rng)}", f"    weight {_word(rng)}", "}"]
    names = []
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(("VI_1", "VI_2", "x y", "", "VI_1"))
        names.append(name)
        lines.append(f"vrrp_instance {name} {{")
        if rng.random() < 0.8:     # what an instance needs, so most get translated
            lines += [f"    interface {rng.choice(('eth0', 'eth1', _word(rng)))}",
                      f"    virtual_router_id {rng.choice(('51', '52', _word(rng)))}"]
        for _ in range(rng.randint(0, 8)):
            lines.append("    " + rng.choice(INST_LINES).format(w=_word(rng)).replace("{w}", _word(rng)))
        blocks = rng.sample(BLOCKS, rng.randint(0, 4))
        if "virtual_ipaddress" not in blocks and rng.random() < 0.8:
            blocks.insert(0, "virtual_ipaddress")
        for b in blocks:
            lines += _ka_block(rng, b)
        lines.append("}")
    if names and rng.random() < 0.4:
        lines += ["vrrp_sync_group G {", "    group {"] + [f"        {n}" for n in names + ["nope"]]
        lines += ["    }", "}"]
    return "\n".join(lines)


class Keepalived:
    name = "import-keepalived"

    def generate(self, rng: random.Random) -> dict:
        text = SEED_KA if rng.random() < 0.2 else _keepalived(rng)
        if rng.random() < 0.6:
            text = edit_lines(rng, text, WORDS + ["{", "}", "} }", "{ {", "\"", "vrrp_instance X {",
                                                  "virtual_ipaddress {", "!"])
        return {"text": text}

    def check(self, case: dict) -> list[str]:
        return check_imported(import_keepalived(case["text"]))

    def dump(self, case: dict) -> dict:
        return case

    def load(self, raw: dict) -> dict:
        return raw


# ------------------------------------------------------------------ the oracle


def check_imported(result: object) -> list[str]:
    expect(isinstance(result, Imported) and isinstance(result.doc, dict), "importer result",
           repr(result)[:200])
    expect(all(isinstance(n, str) and n for n in result.notes), "notes must be non-empty strings",
           repr(result.notes)[:300])
    try:
        text = emit.dumps(result.doc)
    except Exception as exc:  # noqa: BLE001 - the emitter must take every importer document
        raise Finding(f"emit.dumps failed: {type(exc).__name__}", str(exc)) from None
    try:
        back = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Finding("emitted TOML does not parse", f"{exc}\n{text[:500]}") from None
    expect(_same(back, _without_empty_tables(result.doc)), "emitted TOML parses to another document",
           text[:500])
    try:
        load_text(text, "<import>", read_files=False)
    except ConfigError as exc:
        labels = check_error(exc, "<import>")
        return ["translation refused: " + normal_path(exc.errors[0].path)] + \
            [f"refused at {x}" for x in labels]
    return ["translation valid"]


def _without_empty_tables(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not (isinstance(v, dict) and not v)}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)
