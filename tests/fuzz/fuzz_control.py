"""Fuzz targets of the control protocol: parse_line + validate, and the LineFramer.

Request lines are built from the command table (right and wrong field types, missing and extra
fields, non-objects, deep nesting, huge numbers, NaN, lone surrogates, bad UTF-8, CR/NUL/BOM) and
then mutated at the byte level. The framer gets streams of lines around its limit, cut at random
points, and is checked against a one-line model: `stream.split(b"\\n")`.
"""
from __future__ import annotations

import itertools
import json
import random

from fuzzcore import Finding, expect

from vmacd.control import commands
from vmacd.control.framing import LineFramer, Oversize

TYPED = {str: ["lan", "", "x" * 300, "\u00e9\u4e2d", "\ud800"], bool: [True, False],
         int: [0, -1, 2**63, 10**400]}


def _junk(rng: random.Random, depth: int = 0) -> object:
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice([None, True, False, 0, -1, 1.5, 1e308, 2**64, "", "status", "\ud83d",
                           "a\u0000b", "\u2028", rng.getrandbits(32)])
    if r < 0.75:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(("cmd", "instance", "on", "x", "")): _junk(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def request(rng: random.Random) -> object:
    """A JSON value meant as a request: mostly objects shaped like the command table."""
    if rng.random() < 0.1:
        return _junk(rng)
    cmd = rng.choice(list(commands.REGISTRY.values()))
    req: dict = {"cmd": cmd.name if rng.random() < 0.85 else _junk(rng)}
    if rng.random() < 0.05:
        req["cmd"] = rng.choice(("Status", "stat", "reload ", "", "help\u0000"))
    for name, typ in [*cmd.fields, *((f, t) for f, t, _d in cmd.optional)]:
        r = rng.random()
        if r < 0.1:
            continue
        if r < 0.7:
            req[name] = rng.choice(TYPED[typ])
        else:
            req[name] = rng.choice(TYPED[rng.choice(list(TYPED))]) if r < 0.9 else _junk(rng)
    if rng.random() < 0.1:
        req[rng.choice(("extra", "instance", "on", "CMD", ""))] = _junk(rng)
    if rng.random() < 0.05:
        req.pop("cmd")
    return req


def _text(rng: random.Random, value: object) -> str:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5,
                      indent=rng.choice((None, None, 0, 2)))
    return text.replace("\n", " ") if rng.random() < 0.9 else text


SPECIAL = [b"", b" ", b"\t\r", b"\xef\xbb\xbf{}", b"NaN", b"-Infinity", b'"\\ud800"', b"nul\x00l",
           b"[" * 5000 + b"]" * 5000, b"[" * 200000, b'{"cmd": ' * 3000, b"1" * 5000,
           b'{"cmd": "status", "cmd": "help"}', b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80",
           b'{"cmd":"maintenance","instance":' + b"[" * 900 + b"]" * 900 + b',"on":true}']


def line(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.08:
        data = bytearray(rng.choice(SPECIAL))
    elif r < 0.12:
        data = bytearray(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
    else:
        data = bytearray(_text(rng, request(rng)).encode("utf-8", "surrogatepass"))
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 4))):
        op = rng.random()
        if not data or op < 0.25:
            data.insert(rng.randint(0, len(data)), rng.choice(b'{}[]",:\\ \x00\r\x80\xff0e-'))
        elif op < 0.5:
            del data[rng.randrange(len(data))]
        elif op < 0.7:
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        elif op < 0.85:
            del data[rng.randint(0, len(data)):]
        else:
            i = rng.randrange(len(data))
            data[i:i] = data[i:i + rng.randint(1, 10)]
    if rng.random() < 0.05:
        data += b"\r"
    return bytes(data)


class ControlLine:
    """parse_line (pure, total) then validate on whatever it decoded."""

    name = "control-line"

    def generate(self, rng: random.Random) -> bytes:
        return line(rng)

    def check(self, data: bytes) -> list[str]:
        req, err = commands.parse_line(data)
        if err is not None:
            expect(req is None, "parse_line: request with an error", repr(req)[:200])
            expect(isinstance(err, dict) and err.get("ok") is False and set(err) == {"ok", "error"},
                   "parse_line: error reply shape", repr(err))
            _reply_text(err["error"])
            return ["parse error: " + err["error"].split(":")[0]]
        try:
            want = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise Finding("parse_line accepted what json refuses", repr(exc)) from None
        expect(_same(req, want), "parse_line: decoded value differs from json.loads", repr(req)[:200])
        checked = commands.validate(req)
        if isinstance(checked, str):
            _reply_text(checked)
            return ["refused: " + _shape(checked)]
        cmd, args = checked
        expect(commands.REGISTRY.get(cmd.name) is cmd and isinstance(req, dict)
               and req.get("cmd") == cmd.name, "validate: wrong command", repr(cmd))
        optional = {f: (t, d) for f, t, d in cmd.optional}
        expect(set(args) == {f for f, _ in cmd.fields} | set(optional)
               and set(req) <= set(args) | {"cmd"} and {f for f, _ in cmd.fields} <= set(req),
               "validate: fields", repr((args, req))[:300])
        for f, typ in cmd.fields:
            v = args[f]
            ok = (type(v) is typ) and not (typ is str and v == "")
            expect(ok and v is req[f], "validate: field type", f"{f}={v!r} for {typ.__name__}")
        for f, (typ, default) in optional.items():
            v = args[f]
            expect(v is req[f] if f in req else v == default, "validate: optional field",
                   f"{f}={v!r} (default {default!r})")
            expect(type(v) is typ, "validate: optional field type", f"{f}={v!r} for {typ.__name__}")
        return [f"valid {cmd.name}"]

    def dump(self, data: bytes) -> dict:
        return {"line": data.hex()}

    def load(self, raw: dict) -> bytes:
        return bytes.fromhex(raw["line"])


def _same(a: object, b: object) -> bool:
    return a == b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _reply_text(msg: object) -> None:
    """An error message must be non-empty text that a UTF-8 reply line can carry."""
    expect(isinstance(msg, str) and msg, "error message empty", repr(msg))
    try:
        msg.encode("utf-8")
        json.dumps({"ok": False, "error": msg}, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise Finding("error message cannot be sent as UTF-8", repr(msg)[:200]) from exc


def _shape(msg: str) -> str:
    """The message without the user's values, for counting distinct outcomes."""
    head = msg.split(", got")[0].split(";")[0]
    for quote in ("'", '"'):
        parts = head.split(quote)
        head = quote.join(p if i % 2 == 0 else "…" for i, p in enumerate(parts))
    return head[:80]


class Framing:
    """LineFramer against `stream.split(b"\\n")`, fed in random pieces."""

    name = "control-framing"

    def generate(self, rng: random.Random) -> dict:
        limit = rng.choice((1, 2, 3, 8, 16, 64, rng.randint(1, 100)))
        stream = bytearray()
        for _ in range(rng.randint(0, 12)):
            n = rng.choice((0, limit - 1, limit, limit + 1, limit + 2, rng.randint(0, 3 * limit)))
            body = bytes(rng.choice(b"ab{\r\x00") for _ in range(max(n, 0)))
            stream += body + rng.choice((b"\n", b"\n", b"\r\n", b"\n\n", b"\r\r\n"))
        if rng.random() < 0.5:
            stream += bytes(rng.choice(b"ab\r") for _ in range(rng.randint(0, 2 * limit + 3)))
        cuts = sorted(rng.randint(0, len(stream)) for _ in range(rng.randint(0, 10)))
        return {"limit": limit, "stream": bytes(stream).hex(), "cuts": cuts}

    def check(self, case: dict) -> list[str]:
        limit, stream, cuts = case["limit"], bytes.fromhex(case["stream"]), case["cuts"]
        framer, got = LineFramer(limit), []
        bounds = [0, *cuts, len(stream)]
        for a, b in itertools.pairwise(bounds):
            got += framer.feed(stream[a:b])
            expect(framer.buffered <= limit + 1, "framer buffers more than max_line + 1",
                   f"{framer.buffered} bytes")
        got += framer.close()
        want = model_lines(stream, limit)
        expect(got == want, "framer items differ from the model", f"got {got!r}\nwant {want!r}")
        try:
            framer.feed(b"x")
        except ValueError:
            pass
        else:
            raise Finding("framer took input after close()", "")
        return [f"{sum(isinstance(x, Oversize) for x in got)} oversize",
                "partial last line" if stream and not stream.endswith(b"\n") else "ends with newline"]

    def dump(self, case: dict) -> dict:
        return case

    def load(self, raw: dict) -> dict:
        return raw


def model_lines(stream: bytes, limit: int) -> list[bytes | Oversize]:
    pieces = stream.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    out: list[bytes | Oversize] = []
    for p in pieces:
        p = p[:-1] if p.endswith(b"\r") else p
        out.append(Oversize(limit) if len(p) > limit else p)
    return out
