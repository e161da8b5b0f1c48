"""Fuzz targets of the advertisement codec: decode_ip_packet, decode and ReplayGuard.

Inputs (wiregen.py) start from real packets, get structure-aware mutations, then the repairs a
forger would make, so mutated packets reach the deeper checks.

Oracle (wireref.py): the exact drop reason or the exact Advertisement; plus, for accepted
packets, the checksum form rule, re-encoding (encode / build_ip_packet with the same parameters
gives bytes that decode to an equal Advertisement), decode() agreeing with decode_ip_packet(),
and a fresh ReplayGuard taking a verified counter once.
"""
from __future__ import annotations

import dataclasses
import random

import wireref
from fuzzcore import Finding, expect
from wiregen import G4, G6, ip, make_packet, rand_v4, rand_v6, receiver
from wireref import Drop

from vmacd.core import wire
from vmacd.core.auth import AuthSpec, ReplayGuard

# ------------------------------------------------------------------ cases and the oracle


@dataclasses.dataclass
class WireCase:
    data: bytes
    spec: AuthSpec | None
    pseudo: bool
    strict: bool
    verify: bool
    src: object = None          # payload mode only: the addresses and TTL the socket gave
    dst: object = None
    ttl: int | None = 255
    strict_ll: bool = False     # strict_link_local: refuse an IPv6 first address not link-local


def dump_spec(spec: AuthSpec | None) -> list | None:
    return None if spec is None else [spec.type, spec.key.hex(), spec.key_id]


def load_spec(raw: list | None) -> AuthSpec | None:
    return None if raw is None else AuthSpec(raw[0], bytes.fromhex(raw[1]), raw[2])


def adv_fields(adv: wire.Advertisement) -> dict:
    return {f.name: getattr(adv, f.name) for f in dataclasses.fields(adv)}


def compare(got: object, want: dict | str, what: str) -> str:
    """Check the codec's result against the model; the outcome label."""
    if isinstance(got, wire.PacketError):
        if got.reason not in wire.DROP_REASONS:
            raise Finding("unknown drop reason", got.reason)
        if not isinstance(want, str):
            raise Finding(f"{what}: refused, model accepts", f"codec {got.reason!r} ({got.detail})")
        if got.reason != want:
            raise Finding(f"{what}: drop reason {got.reason} where the model says {want}",
                          f"codec {got.reason!r} ({got.detail}), model {want!r}")
        return f"drop {got.reason}"
    if isinstance(want, str):
        raise Finding(f"{what}: accepted, model drops {want}", f"codec accepted {got!r}")
    fields = adv_fields(got)
    if fields != want:
        diff = {k: (fields[k], v) for k, v in want.items() if fields[k] != v}
        raise Finding(f"{what}: advertisement differs from the model ({', '.join(sorted(diff))})",
                      repr(diff))
    return f"accept v{got.version}/ipv{got.src.version} {got.checksum} {got.auth_type}"


def call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except wire.PacketError as exc:
        return exc


def model(fn, *args) -> dict | str:
    try:
        return fn(*args)
    except Drop as d:
        return d.reason


def check_accepted(adv: wire.Advertisement, case: WireCase, ip_mode: bool) -> list[str]:
    """Invariants of an accepted advertisement: checksum form, re-encoding, replay guard."""
    labels = []
    if adv.version == 2:
        expect(adv.checksum == wire.CHECKSUM_V2, "checksum form", f"v2 reports {adv.checksum}")
    elif adv.src.version == 6:
        expect(adv.checksum == wire.CHECKSUM_PSEUDO, "checksum form", f"v3/IPv6 reports {adv.checksum}")
    elif case.strict:
        want = wire.CHECKSUM_PSEUDO if case.pseudo else wire.CHECKSUM_NO_PSEUDO
        expect(adv.checksum == want, "checksum form", f"strict {want} but reports {adv.checksum}")
    labels.append(reencode(adv, case, ip_mode))
    info = dict(adv.auth_info)
    if info.get("verified") and adv.auth_type in ("hmac-sha256", "ah"):
        guard = ReplayGuard()
        guard.check(adv)
        again = call(guard.check, adv)
        if not (isinstance(again, wire.PacketError) and again.reason == "replay"):
            raise Finding("replay guard", f"the same verified advert twice: {again!r}")
        labels.append("replay refused")
    return labels


def reencode(adv: wire.Advertisement, case: WireCase, ip_mode: bool) -> str:
    """Encode the accepted advert again with the same parameters; it must decode equal."""
    spec = case.spec if case.verify else None
    if adv.auth_type != "none" and not (case.verify and spec is not None):
        return "re-encode skipped (auth not verified)"
    template = dataclasses.replace(adv, src=None, dst=None, ttl=255, checksum="", auth_info=())
    info = dict(adv.auth_info)
    counter = info.get("counter", info.get("seq"))
    pseudo = adv.checksum != wire.CHECKSUM_NO_PSEUDO
    try:
        if ip_mode:
            data = case.data
            ident = int.from_bytes(data[4:6], "big") if adv.src.version == 4 else 0
            tos = data[1] if adv.src.version == 4 else ((data[0] & 15) << 4 | data[1] >> 4)
            out = wire.build_ip_packet(template, src=adv.src, dst=adv.dst, pseudo_header=pseudo,
                                       auth=spec, counter=counter, ident=ident, tos=tos)
        else:
            out = wire.encode(template, src=adv.src, dst=adv.dst, pseudo_header=pseudo, auth=spec,
                              counter=counter if adv.auth_type == "hmac-sha256" else None)
    except wire.UsageError as exc:
        return f"re-encode refused: {_usage_kind(str(exc))}"
    if ip_mode:
        again = call(wire.decode_ip_packet, out, spec, pseudo_header=case.pseudo,
                     strict_checksum=case.strict, verify_auth=case.verify,
                     strict_link_local=case.strict_ll)
    else:
        again = call(wire.decode, out, src=adv.src, dst=adv.dst, ttl=adv.ttl, auth=spec,
                     pseudo_header=case.pseudo, strict_checksum=case.strict, verify_auth=case.verify,
                     strict_link_local=case.strict_ll)
    if not isinstance(again, wire.Advertisement):
        raise Finding("re-encoded advert refused", repr(again))
    a, b = adv_fields(again), adv_fields(adv)
    if a["checksum"] != b["checksum"]:
        # legal only when the new bytes verify in both forms (1 in 65535): the configured one wins
        a["checksum"] = b["checksum"] = ""
    if a != b:
        raise Finding("re-encoded advert decodes differently",
                      repr({k: (a[k], b[k]) for k in a if a[k] != b[k]}))
    return "re-encoded"


def _usage_kind(msg: str) -> str:
    for word in ("vrid", "virtual address", "link-local", "unicast", "interval", "family"):
        if word in msg:
            return word
    return msg[:40]


class WireIP:
    """decode_ip_packet on whole IPv4 (with AH) and IPv6 packets."""

    name = "wire-ip"

    def generate(self, rng: random.Random) -> WireCase:
        parts, sender = make_packet(rng)
        spec, pseudo, strict, verify = receiver(rng, sender)
        return WireCase(parts.bytes(), spec, pseudo, strict, verify, strict_ll=rng.random() < 0.3)

    def check(self, case: WireCase) -> list[str]:
        got = call(wire.decode_ip_packet, case.data, case.spec, pseudo_header=case.pseudo,
                   strict_checksum=case.strict, verify_auth=case.verify,
                   strict_link_local=case.strict_ll)
        spec = case.spec or AuthSpec()
        want = model(wireref.judge_ip, case.data, spec, case.pseudo, case.strict, case.verify,
                     case.strict_ll)
        labels = [compare(got, want, "decode_ip_packet")]
        labels += self._same_as_decode(case, got)
        if isinstance(got, wire.Advertisement):
            labels += check_accepted(got, case, True)
        return labels

    @staticmethod
    def _same_as_decode(case: WireCase, got: object) -> list[str]:
        """A well-formed IP packet without AH: decode() of its payload gives the same result."""
        d = case.data
        if not d or d[0] >> 4 not in (4, 6) or (case.spec and case.spec.type == "ah" and case.verify):
            return []
        if d[0] >> 4 == 4:
            ihl = (d[0] & 15) * 4
            if (ihl < 20 or len(d) < ihl or not ihl <= (d[2] << 8 | d[3]) <= len(d) or d[9] != 112
                    or wireref.csum16(d[:ihl]) != 0xFFFF or (d[6] << 8 | d[7]) & 0x3FFF):
                return []
            payload, src, dst, ttl = d[ihl:d[2] << 8 | d[3]], d[12:16], d[16:20], d[8]
        else:
            if len(d) < 40 or 40 + (d[4] << 8 | d[5]) > len(d) or d[6] != 112:
                return []
            payload, src, dst, ttl = d[40:40 + (d[4] << 8 | d[5])], d[8:24], d[24:40], d[7]
        again = call(wire.decode, payload, src=ip(src), dst=ip(dst), ttl=ttl, auth=case.spec,
                     pseudo_header=case.pseudo, strict_checksum=case.strict, verify_auth=case.verify,
                     strict_link_local=case.strict_ll)
        same = (again.reason == got.reason if isinstance(got, wire.PacketError) and
                isinstance(again, wire.PacketError) else again == got)
        if not same:
            raise Finding("decode() and decode_ip_packet() disagree", f"{again!r} vs {got!r}")
        return ["decode() agrees"]

    def dump(self, case: WireCase) -> dict:
        return {"data": case.data.hex(), "auth": dump_spec(case.spec), "pseudo_header": case.pseudo,
                "strict_checksum": case.strict, "verify_auth": case.verify,
                "strict_link_local": case.strict_ll}

    def load(self, raw: dict) -> WireCase:
        return WireCase(bytes.fromhex(raw["data"]), load_spec(raw["auth"]), raw["pseudo_header"],
                        raw["strict_checksum"], raw["verify_auth"],
                        strict_ll=raw.get("strict_link_local", False))


class WirePayload:
    """decode() on the VRRP payload as a raw socket delivers it (addresses and TTL apart)."""

    name = "wire-payload"

    def generate(self, rng: random.Random) -> WireCase:
        parts, sender = make_packet(rng)
        spec, pseudo, strict, verify = receiver(rng, sender)
        if spec is not None and spec.type == "ah":
            verify = False     # AH is judged on the IP packet only (decode() says so)
        src, dst = parts.src, parts.dst
        if rng.random() < 0.1:
            src = rand_v6(rng, True) if src.version == 6 else rand_v4(rng)
        if rng.random() < 0.1:
            dst = (G6 if rng.random() < 0.5 else rand_v6(rng, True)) if dst.version == 6 else \
                (G4 if rng.random() < 0.5 else rand_v4(rng))
        ttl = 255 if rng.random() < 0.9 else rng.choice((None, 254, 0, 1, 64, rng.getrandbits(8)))
        payload = bytes(parts.ah or b"") + bytes(parts.vrrp) if rng.random() < 0.05 else bytes(parts.vrrp)
        return WireCase(payload, spec, pseudo, strict, verify, src, dst, ttl, rng.random() < 0.3)

    def check(self, case: WireCase) -> list[str]:
        got = call(wire.decode, case.data, src=case.src, dst=case.dst, ttl=case.ttl, auth=case.spec,
                   pseudo_header=case.pseudo, strict_checksum=case.strict, verify_auth=case.verify,
                   strict_link_local=case.strict_ll)
        spec = case.spec or AuthSpec()
        want = model(wireref.judge_payload, case.data, case.src, case.dst, case.ttl, spec,
                     case.pseudo, case.strict, case.verify, None, case.strict_ll)
        labels = [compare(got, want, "decode")]
        if isinstance(got, wire.Advertisement):
            labels += check_accepted(got, case, False)
        return labels

    def dump(self, case: WireCase) -> dict:
        return {"payload": case.data.hex(), "src": str(case.src), "dst": str(case.dst),
                "ttl": case.ttl, "auth": dump_spec(case.spec), "pseudo_header": case.pseudo,
                "strict_checksum": case.strict, "verify_auth": case.verify,
                "strict_link_local": case.strict_ll}

    def load(self, raw: dict) -> WireCase:
        return WireCase(bytes.fromhex(raw["payload"]), load_spec(raw["auth"]), raw["pseudo_header"],
                        raw["strict_checksum"], raw["verify_auth"], ip(raw["src"]), ip(raw["dst"]),
                        raw["ttl"], raw.get("strict_link_local", False))


class Replay:
    """ReplayGuard.check on sequences of adverts against a dictionary model."""

    name = "replay"
    SRCS = (ip("192.0.2.1"), ip("192.0.2.2"), ip("fe80::1"))

    def generate(self, rng: random.Random) -> list[tuple]:
        steps = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.choice(("hmac-sha256", "hmac-sha256", "ah", "ah", "none", "pass"))
            steps.append(("check", str(rng.choice(self.SRCS)), rng.choice((1, 2)), kind,
                          rng.choice((0, 1, 2, 3, 5, 2**32 - 1, 2**64 - 1, rng.getrandbits(64))),
                          rng.random() < 0.9))
        return steps

    def check(self, steps: list[tuple]) -> list[str]:
        guard, highest, labels = ReplayGuard(), {}, []
        for step in steps:
            _, src, vrid, kind, counter, verified = step
            counter = counter & 0xFFFFFFFF if kind == "ah" else counter
            adv = self._advert(ip(src), vrid, kind, counter, verified)
            key = (ip(src), vrid, kind)
            ok = kind in ("hmac-sha256", "ah") and verified and (key not in highest or counter > highest[key])
            got = call(guard.check, adv)
            if ok:
                expect(got is None, "replay guard refused a fresh counter", f"{step}: {got!r}")
                highest[key] = counter
                labels.append("accept")
            else:
                expect(isinstance(got, wire.PacketError) and got.reason == "replay",
                       "replay guard accepted a replay", f"{step}: {got!r}")
                labels.append("drop replay")
        return labels

    @staticmethod
    def _advert(src, vrid: int, kind: str, counter: int, verified: bool) -> wire.Advertisement:
        if kind == "hmac-sha256":
            info = (("counter", counter), ("key_id", 0), ("verified", verified))
        elif kind == "ah":
            info = (("spi", int(src) & 0xFFFFFFFF), ("seq", counter), ("verified", verified))
        else:
            info = (("verified", verified),) if kind == "pass" else ()
        addr = ip("192.0.2.100") if src.version == 4 else ip("fe80::100")
        adv = wire.Advertisement(3 if kind != "pass" else 2, vrid, 100, 100, (addr,), src=src,
                                 dst=G4 if src.version == 4 else G6, auth_type=kind, auth_info=info)
        return adv

    def dump(self, steps: list[tuple]) -> dict:
        return {"steps": [list(s) for s in steps]}

    def load(self, raw: dict) -> list[tuple]:
        return [tuple(s) for s in raw["steps"]]

