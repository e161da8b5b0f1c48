"""Inputs of the codec's fuzz targets (fuzz_wire.py): packets, mutations, repairs.

Inputs start from real packets (the golden vectors, and fresh ones from build_ip_packet for a
random template: v2/v3, IPv4/IPv6, every auth kind, unicast or multicast), get 0-5 structure-aware
mutations (header fields, count vs length, truncation, trailers, AH fields, IP header fields),
then, each with its own probability, the repairs a forger would make (VRRP checksum, hmac tag,
lengths, AH ICV, IPv4 header checksum) so mutated packets reach the deeper checks. `receiver()`
draws how the receiving side is configured.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
import random

import wireref

from vmacd.core import wire
from vmacd.core.auth import AuthSpec

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


def rand_v4(rng: random.Random) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(rng.choice(_V4_NETS) | rng.randint(1, 254))


def rand_v6(rng: random.Random, link_local: bool) -> ipaddress.IPv6Address:
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
        src = rand_v6(rng, True)
        addrs = [rand_v6(rng, True)] + [rand_v6(rng, rng.random() < 0.2) for _ in range(count - 1)]
        group = G6
    else:
        src = rand_v4(rng)
        addrs = [rand_v4(rng) for _ in range(count)]
        group = G4
    addrs = list(dict.fromkeys(a for a in addrs if a != src))
    if not addrs or (six and not addrs[0].is_link_local):
        addrs.insert(0, _other(src))           # src itself was drawn: another link-local first
    dst = group if rng.random() < 0.75 else (rand_v6(rng, True) if six else rand_v4(rng))
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
        addr = (rand_v6(rng, rng.random() < 0.5) if p.v6 else rand_v4(rng)).packed
        p.vrrp[8:8] = addr
        if rng.random() < 0.8:
            p.vrrp[3] = (p.vrrp[3] + 1) & 0xFF
    elif r < 0.7 and len(p.vrrp) >= 8 + alen:
        del p.vrrp[8:8 + alen]
        if rng.random() < 0.8:
            p.vrrp[3] = (p.vrrp[3] - 1) & 0xFF
    elif len(p.vrrp) >= 8 + alen:
        pick = rng.choice((rand_v6(rng, False), rand_v6(rng, True), ip("::"), ip("fe80::"), ip("febf::1"),
                           ip("fec0::1"), ip("ff02::1"))) if p.v6 else rand_v4(rng)
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
            a = rng.choice((rand_v6(rng, True), rand_v6(rng, False), G6, ip("::")))
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
        a = rng.choice((rand_v4(rng), G4, ip("0.0.0.0"), ip("255.255.255.255"), ip("224.0.0.5")))
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


# ------------------------------------------------------------------ one input


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
