"""Fuzz targets of the advertisement codec: decode_ip_packet, decode and ReplayGuard.

Inputs start from real packets (the golden vectors, and fresh ones from build_ip_packet for a
random template: v2/v3, IPv4/IPv6, every auth kind, unicast or multicast), get 0-5 structure-aware
mutations (header fields, count vs length, truncation, trailers, AH fields, IP header fields),
then, each with its own probability, the repairs a forger would make (VRRP checksum, hmac tag,
lengths, AH ICV, IPv4 header checksum) so mutated packets reach the deeper checks.

Oracle (wireref.py): the exact drop reason or the exact Advertisement; plus, for accepted
packets, the checksum form rule, re-encoding (encode / build_ip_packet with the same parameters
gives bytes that decode to an equal Advertisement), decode() agreeing with decode_ip_packet(),
and a fresh ReplayGuard taking a verified counter once.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
import random

import wireref
from fuzzcore import Finding, expect
from wireref import Drop

from vmacd.core import wire
from vmacd.core.auth import AuthSpec, ReplayGuard

ip = ipaddress.ip_address
G4, G6 = ip("224.0.0.18"), ip("ff02::12")
HKEY = b"fuzz-hmac-key-0123456789abcdef!!"
GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "unit" / "vectors" / "golden.json"

# what receivers may be configured with: the senders' keys, wrong keys, another key_id
SPECS = [
    None, AuthSpec("pass", b"pw"), AuthSpec("pass", b"secret"), AuthSpec("pass", b"pw2"),
    AuthSpec("ah", b"ahkey"), AuthSpec("ah", b"vmacd"), AuthSpec("ah", b"wrong"),
    AuthSpec("hmac-sha256", HKEY), AuthSpec("hmac-sha256", HKEY, key_id=7),
    AuthSpec("hmac-sha256", b"0123456789abcdef0123456789abcdef"),
    AuthSpec("hmac-sha256", b"x" * 16),
]
SEND_SPECS = {"none": [None], "pass": SPECS[1:3], "ah": SPECS[4:6], "hmac-sha256": SPECS[7:10]}


def _golden() -> list[tuple[bytes, AuthSpec | None]]:
    out = []
    for vec in json.loads(GOLDEN.read_text()):
        auth = vec.get("auth")
        spec = AuthSpec(auth[0], auth[1].encode()) if auth else None
        out.append((bytes.fromhex(vec["hex"]), spec))
    return out


GOLDEN_PACKETS = _golden()


# ------------------------------------------------------------------ the packet being built


@dataclasses.dataclass
class Parts:
    """A packet cut into its layers so mutations and repairs know where they act."""

    ip: bytearray              # IPv4 header (with options) or the 40-byte IPv6 header
    ah: bytearray | None       # the 24-byte AH, or None
    vrrp: bytearray
    pad: bytes = b""           # bytes beyond the IP length (Ethernet padding)

    @property
    def v6(self) -> bool:
        return len(self.ip) == 40 and self.ip[0] >> 4 == 6

    @property
    def src(self):
        return ip(bytes(self.ip[8:24])) if self.v6 else ip(bytes(self.ip[12:16]))

    @property
    def dst(self):
        return ip(bytes(self.ip[24:40])) if self.v6 else ip(bytes(self.ip[16:20]))

    def std(self) -> int | None:
        """The standard message length the VRRP header announces (None: header too short)."""
        if len(self.vrrp) < 8:
            return None
        return 8 + self.vrrp[3] * (16 if self.v6 else 4) + (8 if self.vrrp[0] >> 4 == 2 else 0)

    def bytes(self) -> bytes:
        return bytes(self.ip) + bytes(self.ah or b"") + bytes(self.vrrp) + self.pad


def split(packet: bytes) -> Parts:
    if packet[0] >> 4 == 6:
        return Parts(bytearray(packet[:40]), None, bytearray(packet[40:]))
    ihl = (packet[0] & 15) * 4
    if packet[9] == wireref.PROTO_AH:
        return Parts(bytearray(packet[:ihl]), bytearray(packet[ihl:ihl + 24]), bytearray(packet[ihl + 24:]))
    return Parts(bytearray(packet[:ihl]), None, bytearray(packet[ihl:]))


_V4_NETS = (0xC0000200, 0xC6336400, 0xCB007100)            # 192.0.2/24, 198.51.100/24, 203.0.113/24


def _v4(rng: random.Random) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(rng.choice(_V4_NETS) | rng.randint(1, 254))


def _v6(rng: random.Random, link_local: bool) -> ipaddress.IPv6Address:
    if link_local:
        return ipaddress.IPv6Address(0xFE80 << 112 | rng.randint(1, 0xFFFF))
    return ipaddress.IPv6Address(0x20010DB8 << 96 | rng.getrandbits(16) << 80 | rng.randint(1, 0xFFFF))


def fresh_packet(rng: random.Random) -> tuple[bytes, AuthSpec | None]:
    """A valid packet from build_ip_packet for a random template, and the sender's auth."""
    version = 3 if rng.random() < 0.6 else 2
    six = version == 3 and rng.random() < 0.35
    kinds = ["none", "hmac-sha256"] + (["pass", "ah"] if version == 2 else [])
    kind = rng.choice(kinds)
    spec = rng.choice(SEND_SPECS[kind])
    count = rng.choice((1, 1, 1, 2, 3, 4, rng.randint(1, 20),
                        rng.randint(1, 255) if rng.random() < 0.02 else 1))
    if six:
        src = _v6(rng, True)
        addrs = [_v6(rng, True)] + [_v6(rng, rng.random() < 0.2) for _ in range(count - 1)]
        group = G6
    else:
        src = _v4(rng)
        addrs = [_v4(rng) for _ in range(count)]
        group = G4
    addrs = list(dict.fromkeys(a for a in addrs if a != src))
    if not addrs or (six and not addrs[0].is_link_local):
        addrs.insert(0, _other(src))           # src itself was drawn: another link-local first
    dst = group if rng.random() < 0.75 else (_v6(rng, True) if six else _v4(rng))
    interval = rng.randint(1, 4095) if version == 3 else 100 * rng.randint(1, 255)
    prio = rng.choice((0, 1, 100, 254, 255, rng.randint(0, 255)))
    adv = wire.Advertisement(version, rng.randint(1, 255), prio, interval, tuple(addrs))
    counter = None
    if kind == "hmac-sha256":
        counter = rng.choice((0, 1, 2**64 - 1, rng.getrandbits(64)))
    elif kind == "ah":
        counter = rng.choice((0, 1, 2**32 - 1, rng.getrandbits(32)))
    pkt = wire.build_ip_packet(adv, src=src, dst=dst, pseudo_header=rng.random() < 0.7, auth=spec,
                               counter=counter, ident=rng.getrandbits(16), tos=rng.getrandbits(8))
    return pkt, spec


def _other(a):
    return ip(int(a) ^ 1)


# ------------------------------------------------------------------ mutations


def _set_nibble(b: bytearray, i: int, hi: bool, v: int) -> None:
    b[i] = (b[i] & 0x0F) | (v << 4) if hi else (b[i] & 0xF0) | v


def _byte(rng: random.Random, *special: int) -> int:
    return rng.choice(special) if special and rng.random() < 0.6 else rng.getrandbits(8)


def m_version(rng, p):
    if p.vrrp:
        _set_nibble(p.vrrp, 0, True, rng.choice((2, 3, 0, 1, 4, 15, rng.getrandbits(4))))


def m_type(rng, p):
    if p.vrrp:
        _set_nibble(p.vrrp, 0, False, rng.choice((0, 2, 15, rng.getrandbits(4))))


def m_vrid_prio(rng, p):
    if len(p.vrrp) > 2:
        p.vrrp[rng.choice((1, 2))] = _byte(rng, 0, 1, 254, 255)


def m_count(rng, p):
    if len(p.vrrp) > 3:
        c = p.vrrp[3]
        p.vrrp[3] = rng.choice((0, 255, max(c - 1, 0), min(c + 1, 255), rng.getrandbits(8)))


def m_interval(rng, p):
    if len(p.vrrp) > 5:
        if p.vrrp[0] >> 4 == 3:
            v = rng.choice((0, 1, 4095, 0x1000, 0xF000, rng.getrandbits(16)))
            p.vrrp[4:6] = v.to_bytes(2, "big")
        else:
            p.vrrp[5] = _byte(rng, 0, 1, 255)


def m_v2_auth(rng, p):
    """Auth Type byte and Authentication Data of a v2 message."""
    if len(p.vrrp) > 4 and rng.random() < 0.6:
        p.vrrp[4] = _byte(rng, 0, 1, 2, 254, 3, 255)
    std = p.std()
    if std and len(p.vrrp) >= std and p.vrrp[0] >> 4 == 2:
        data = rng.choice((b"pw", b"secret", b"pw2", b"", bytes(rng.getrandbits(8) for _ in range(8))))
        p.vrrp[std - 8:std] = data.ljust(8, b"\0")[:8]


def m_truncate(rng, p):
    if p.vrrp:
        std = p.std() or len(p.vrrp)
        cut = rng.choice((rng.randrange(len(p.vrrp)), std - 1, std, std + 1, len(p.vrrp) - 1,
                          len(p.vrrp) - 4, len(p.vrrp) - 16, 7, 8))
        del p.vrrp[max(cut, 0):]


def m_extend(rng, p):
    n = rng.choice((1, 4, 8, 16, 27, 28, 29, rng.randint(1, 64)))
    p.vrrp += bytes(rng.getrandbits(8) for _ in range(n))


def m_addresses(rng, p):
    """Add or drop one address keeping (or not) the count in step; IPv6 first address."""
    alen = 16 if p.v6 else 4
    std = p.std()
    if std is None:
        return
    r = rng.random()
    if r < 0.4:
        addr = (_v6(rng, rng.random() < 0.5) if p.v6 else _v4(rng)).packed
        p.vrrp[8:8] = addr
        if rng.random() < 0.8:
            p.vrrp[3] = (p.vrrp[3] + 1) & 0xFF
    elif r < 0.7 and len(p.vrrp) >= 8 + alen:
        del p.vrrp[8:8 + alen]
        if rng.random() < 0.8:
            p.vrrp[3] = (p.vrrp[3] - 1) & 0xFF
    elif len(p.vrrp) >= 8 + alen:
        pick = rng.choice((_v6(rng, False), _v6(rng, True), ip("::"), ip("fe80::"), ip("febf::1"),
                           ip("fec0::1"), ip("ff02::1"))) if p.v6 else _v4(rng)
        p.vrrp[8:8 + alen] = pick.packed


def m_trailer(rng, p):
    """Add, remove or alter an hmac-sha256 trailer."""
    std = p.std()
    if std is None or len(p.vrrp) < std:
        return
    if len(p.vrrp) == std or rng.random() < 0.2:
        del p.vrrp[std:]
        head = bytes((rng.choice((1, 1, 0, 2)), rng.choice((0, 7, 255)), 0, 0))
        p.vrrp += head + rng.getrandbits(64).to_bytes(8, "big") + bytes(16)
        return
    if rng.random() < 0.2:
        del p.vrrp[std:]
        return
    i = std + rng.choice((0, 1, 2, 3, 4, 11, 12, 27))
    if i < len(p.vrrp):
        p.vrrp[i] = _byte(rng, 0, 1, 7, 255)


def m_flip(rng, p):
    layer = rng.choice([x for x in (p.ip, p.ah, p.vrrp) if x])
    layer[rng.randrange(len(layer))] ^= 1 << rng.randrange(8)


def m_setbyte(rng, p):
    layer = rng.choice([x for x in (p.ip, p.ah, p.vrrp) if x])
    layer[rng.randrange(len(layer))] = rng.getrandbits(8)


def m_ip_fields(rng, p):
    if p.v6:
        field = rng.choice(("hlim", "nxt", "plen", "ver", "addr"))
        if field == "hlim":
            p.ip[7] = _byte(rng, 254, 0, 1, 255)
        elif field == "nxt":
            p.ip[6] = _byte(rng, 112, 51, 0, 60, 43)
        elif field == "plen":
            p.ip[4:6] = rng.getrandbits(16).to_bytes(2, "big")
        elif field == "ver":
            _set_nibble(p.ip, 0, True, rng.choice((4, 5, 0, 15)))
        else:
            a = rng.choice((_v6(rng, True), _v6(rng, False), G6, ip("::")))
            off = rng.choice((8, 24))
            p.ip[off:off + 16] = a.packed
        return
    field = rng.choice(("ttl", "proto", "ihl", "total", "frag", "tos", "addr", "ver"))
    if field == "ttl":
        p.ip[8] = _byte(rng, 254, 0, 1, 255, 64)
    elif field == "proto":
        p.ip[9] = _byte(rng, 112, 51, 6, 17, 0)
    elif field == "ihl":
        words = rng.choice((0, 4, 5, 6, 7, 15))
        opts = max(words - 5, 0) * 4
        del p.ip[20:]
        p.ip += bytes([1]) * opts if rng.random() < 0.7 else bytes(rng.getrandbits(8) for _ in range(opts))
        _set_nibble(p.ip, 0, False, words)
    elif field == "total":
        p.ip[2:4] = rng.choice((0, 19, 20, rng.getrandbits(16))).to_bytes(2, "big")
    elif field == "frag":
        p.ip[6:8] = rng.choice((0x4000, 0x2000, 0x0001, 0x8000, rng.getrandbits(16))).to_bytes(2, "big")
    elif field == "tos":
        p.ip[1] = rng.getrandbits(8)
    elif field == "addr":
        a = rng.choice((_v4(rng), G4, ip("0.0.0.0"), ip("255.255.255.255"), ip("224.0.0.5")))
        off = rng.choice((12, 16))
        p.ip[off:off + 4] = a.packed
    else:
        _set_nibble(p.ip, 0, True, rng.choice((6, 5, 0, 15)))


def m_ah(rng, p):
    """Alter, add or remove the AH of an IPv4 packet."""
    if p.v6:
        return
    if p.ah is None:
        if rng.random() < 0.5:
            spi = p.src.packed if rng.random() < 0.8 else bytes(4)
            p.ah = bytearray(bytes((112, 4, 0, 0)) + spi + rng.getrandbits(32).to_bytes(4, "big") + bytes(12))
            p.ip[9] = wireref.PROTO_AH
        return
    if rng.random() < 0.15:
        p.ah = None
        return
    i = rng.choice((0, 1, 2, 4, 7, 8, 11, 12, 23))
    if i < len(p.ah):          # an earlier mutation may have cut the AH short
        p.ah[i] = _byte(rng, 112, 4, 0, 255)
    if rng.random() < 0.1:
        del p.ah[rng.randrange(24):]


def m_pad(rng, p):
    p.pad = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 2, 18, 46))))


MUTATIONS = [m_version, m_type, m_vrid_prio, m_count, m_interval, m_v2_auth, m_truncate, m_extend,
             m_addresses, m_trailer, m_flip, m_setbyte, m_ip_fields, m_ah, m_pad]
WEIGHTS = [3, 2, 3, 4, 3, 4, 4, 3, 4, 4, 3, 2, 5, 3, 1]


# ------------------------------------------------------------------ repairs


def fix_checksum(p: Parts, pseudo: bool) -> None:
    std = p.std()
    if std is None or len(p.vrrp) < std:
        return
    msg = bytearray(p.vrrp[:std])
    msg[6:8] = b"\0\0"
    value = wireref.checksum_value(bytes(msg), p.vrrp[0] >> 4, p.src, p.dst, pseudo)
    p.vrrp[6:8] = value.to_bytes(2, "big")


def fix_trailer(p: Parts, spec: AuthSpec) -> None:
    std = p.std()
    if std is None or len(p.vrrp) != std + wireref.TRAILER or spec.type != "hmac-sha256":
        return
    tag = wireref.hmac_tag(spec.key, p.src, p.dst, len(p.vrrp), bytes(p.vrrp[:std]),
                           bytes(p.vrrp[std:std + 12]))
    p.vrrp[std + 12:] = tag


def fix_lengths(p: Parts) -> None:
    body = len(p.ah or b"") + len(p.vrrp)
    if p.v6:
        p.ip[4:6] = (body & 0xFFFF).to_bytes(2, "big")
    elif len(p.ip) >= 4:
        p.ip[2:4] = ((len(p.ip) + body) & 0xFFFF).to_bytes(2, "big")


def fix_ah(p: Parts, spec: AuthSpec) -> None:
    if p.ah is None or len(p.ah) != 24 or spec.type != "ah" or p.v6 or len(p.ip) < 20:
        return
    p.ah[12:24] = wireref.ah_icv(spec.key, bytes(p.ip), bytes(p.ah), bytes(p.vrrp), not p.dst.is_multicast)


def fix_ip_checksum(p: Parts) -> None:
    if p.v6 or len(p.ip) < 20 or len(p.ip) % 2:
        return
    p.ip[10:12] = b"\0\0"
    p.ip[10:12] = (~wireref.csum16(bytes(p.ip)) & 0xFFFF).to_bytes(2, "big")


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


def make_packet(rng: random.Random) -> tuple[Parts, AuthSpec | None]:
    if rng.random() < 0.1:
        pkt, spec = rng.choice(GOLDEN_PACKETS)
    else:
        pkt, spec = fresh_packet(rng)
    parts = split(pkt)
    n = rng.choice((0, 0, 1, 1, 1, 2, 2, 3, 4, 5))
    for op in rng.choices(MUTATIONS, WEIGHTS, k=n):
        op(rng, parts)
    repair_spec = spec if rng.random() < 0.8 else rng.choice(SPECS)
    if n and rng.random() < 0.85:
        fix_checksum(parts, rng.random() < 0.7)
    if n and repair_spec is not None and rng.random() < 0.85:
        fix_trailer(parts, repair_spec)
    if n and rng.random() < 0.85:
        fix_lengths(parts)
    if n and repair_spec is not None and rng.random() < 0.85:
        fix_ah(parts, repair_spec)
    if n and rng.random() < 0.9:
        fix_ip_checksum(parts)
    return parts, spec


def receiver(rng: random.Random, sender: AuthSpec | None) -> tuple[AuthSpec | None, bool, bool, bool]:
    """(auth, pseudo_header, strict_checksum, verify_auth) of the receiving side."""
    spec = sender if rng.random() < 0.7 else rng.choice(SPECS)
    return spec, rng.random() < 0.7, rng.random() < 0.3, rng.random() < 0.85


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
            src = _v6(rng, True) if src.version == 6 else _v4(rng)
        if rng.random() < 0.1:
            dst = (G6 if rng.random() < 0.5 else _v6(rng, True)) if dst.version == 6 else \
                (G4 if rng.random() < 0.5 else _v4(rng))
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

