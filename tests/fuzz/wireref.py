"""An independent model of the receive checks of docs/wire.md, the oracle of the wire targets.

It shares no code with vmacd/core: own checksum, own pseudo-header, own HMAC-SHA256 and
HMAC-MD5-96 (stdlib hmac, where vmacd uses `cryptography`). Given a packet it predicts the drop
reason the codec must give (first failing check in the documented order) or the fields of the
advertisement it must accept.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct

TTL = 255
PROTO_VRRP, PROTO_AH = 112, 51
V2_AUTH = {0: "none", 1: "pass", 2: "ah", 254: "hmac-sha256"}
TRAILER = 28


class Drop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def csum16(data: bytes) -> int:
    """One's-complement sum of big-endian 16-bit words, folded (0..0xFFFF)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def add16(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def phdr(src, dst, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + bytes((0, PROTO_VRRP)) + length.to_bytes(2, "big")
    return src.packed + dst.packed + length.to_bytes(4, "big") + bytes((0, 0, 0, PROTO_VRRP))


def forms_that_verify(msg: bytes, version: int, src, dst) -> set[str]:
    if version == 2:
        return {"v2"} if csum16(msg) == 0xFFFF else set()
    with_ph = add16(csum16(msg), csum16(phdr(src, dst, len(msg)))) == 0xFFFF
    if src.version == 6:
        return {"pseudo-header"} if with_ph else set()
    out = {"no-pseudo-header"} if csum16(msg) == 0xFFFF else set()
    return out | ({"pseudo-header"} if with_ph else set())


def checksum_value(msg: bytes, version: int, src, dst, pseudo: bool) -> int:
    """The checksum a sender puts in (msg has a zero checksum field)."""
    start = csum16(phdr(src, dst, len(msg))) if version == 3 and (src.version == 6 or pseudo) else 0
    return ~add16(csum16(msg), start) & 0xFFFF


def hmac_tag(key: bytes, src, dst, total_len: int, msg: bytes, head12: bytes) -> bytes:
    return hmac.new(key, phdr(src, dst, total_len) + msg + head12, hashlib.sha256).digest()[:16]


def ah_icv(key: bytes, ip_header: bytes, ah: bytes, vrrp: bytes, unicast: bool) -> bytes:
    hdr = bytearray(ip_header)
    hdr[1] = 0
    hdr[6:8] = b"\0\0"
    hdr[10:12] = b"\0\0"
    if unicast:
        hdr[8] = 0
    data = bytes(hdr) + ah[:12] + b"\0" * 12 + vrrp
    return hmac.new(key.ljust(8, b"\0"), data, hashlib.md5).digest()[:12]


def judge_payload(p: bytes, src, dst, ttl, spec, pseudo: bool, strict: bool, verify: bool,
                  ah: dict | None, strict_ll: bool = False) -> dict:
    """The accepted advertisement's fields, or raise Drop(reason). `spec` is an AuthSpec."""
    if ttl is None or ttl != TTL:
        raise Drop("ttl")
    if len(p) < 8:
        raise Drop("length")
    version, vtype, count = p[0] >> 4, p[0] & 15, p[3]
    if version not in (2, 3) or (version == 2 and src.version == 6):
        raise Drop("version")
    if vtype != 1:
        raise Drop("type")
    if count == 0:
        raise Drop("addresses")
    alen = 4 if src.version == 4 else 16
    std = 8 + count * alen + (8 if version == 2 else 0)
    if verify:
        trailer = TRAILER if spec.type == "hmac-sha256" else 0
    elif version == 2:
        trailer = TRAILER if p[4] == 254 else 0
    else:
        trailer = TRAILER if len(p) == std + TRAILER and p[std] == 1 else 0
    if len(p) != std + trailer:
        raise Drop("length")
    msg = p[:std]
    forms = forms_that_verify(msg, version, src, dst)
    order = ["v2"] if version == 2 else (["pseudo-header"] if src.version == 6 else
                                         ["pseudo-header", "no-pseudo-header"][:: 1 if pseudo else -1])
    if strict:
        order = order[:1]
    form = next((f for f in order if f in forms), None)
    if form is None:
        raise Drop("checksum")
    interval = (int.from_bytes(p[4:6], "big") & 0x0FFF) if version == 3 else p[5] * 100
    if interval == 0:
        raise Drop("interval")
    addrs = tuple(ipaddress.ip_address(p[i:i + alen]) for i in range(8, 8 + count * alen, alen))
    not_ll = alen == 16 and addrs[0] not in ipaddress.ip_network("fe80::/10")
    if not_ll and strict_ll:                    # RFC 9568 §7.1 (erratum 8300), when asked for
        raise Drop("addresses")
    atype, info = _auth(p, std, version, src, dst, spec, verify, ah)
    return {"version": version, "vrid": p[1], "priority": p[2], "interval_cs": interval,
            "addresses": addrs, "src": src, "dst": dst, "ttl": ttl, "type": vtype,
            "checksum": form, "auth_type": atype, "auth_info": info,
            "first_not_link_local": not_ll}


def _auth(p, std, version, src, dst, spec, verify, ah):
    if version == 2:
        carried = V2_AUTH.get(p[4])
        if carried is None:
            raise Drop("auth")
    else:
        carried = "hmac-sha256" if len(p) > std else "none"
    if (carried == "ah") != (ah is not None):
        raise Drop("auth")
    if verify and carried != spec.type:
        raise Drop("auth")
    if carried == "pass":
        if verify and spec.key.ljust(8, b"\0") != p[std - 8:std]:
            raise Drop("auth")
        return carried, (("verified", verify),)
    if carried == "hmac-sha256":
        t = p[std:]
        if t[0] != 1 or t[2:4] != b"\0\0":
            raise Drop("auth")
        counter = int.from_bytes(t[4:12], "big")
        if not verify:
            return carried, (("counter", counter), ("key_id", t[1]), ("verified", False))
        if t[1] != spec.key_id or hmac_tag(spec.key, src, dst, len(p), p[:std], t[:12]) != t[12:]:
            raise Drop("auth")
        return carried, (("counter", counter), ("key_id", spec.key_id), ("verified", True))
    if carried == "ah":
        return carried, (("spi", ah["spi"]), ("seq", ah["seq"]), ("verified", ah["verified"]))
    return carried, ()


def judge_ip(data: bytes, spec, pseudo: bool, strict: bool, verify: bool,
             strict_ll: bool = False) -> dict:
    """decode_ip_packet's expected result: fields, or raise Drop(reason)."""
    if not data:
        raise Drop("length")
    if data[0] >> 4 == 6:
        if len(data) < 40:
            raise Drop("length")
        plen, nxt, hlim = data[4] << 8 | data[5], data[6], data[7]
        if 40 + plen > len(data):
            raise Drop("length")
        if nxt != PROTO_VRRP:
            raise Drop("malformed")
        src, dst = ipaddress.IPv6Address(data[8:24]), ipaddress.IPv6Address(data[24:40])
        return judge_payload(data[40:40 + plen], src, dst, hlim, spec, pseudo, strict, verify, None,
                             strict_ll)
    if data[0] >> 4 != 4:
        raise Drop("malformed")
    ihl = (data[0] & 15) * 4
    if ihl < 20:
        raise Drop("malformed")
    if len(data) < ihl:
        raise Drop("length")
    total = data[2] << 8 | data[3]
    if not ihl <= total <= len(data):
        raise Drop("length")
    if csum16(data[:ihl]) != 0xFFFF:
        raise Drop("checksum")
    if (data[6] << 8 | data[7]) & 0x3FFF:
        raise Drop("malformed")
    ttl, proto = data[8], data[9]
    src, dst = ipaddress.IPv4Address(data[12:16]), ipaddress.IPv4Address(data[16:20])
    payload, ah = data[ihl:total], None
    if proto == PROTO_AH:
        if len(payload) < 24:
            raise Drop("length")
        if payload[0] != PROTO_VRRP or payload[1] != 4:
            raise Drop("malformed")
        head, payload = payload[:24], payload[24:]
        if verify:
            if spec.type != "ah":
                raise Drop("auth")
            if ah_icv(spec.key, data[:ihl], head, payload, not dst.is_multicast) != head[12:24]:
                raise Drop("auth")
            if head[4:8] != src.packed:
                raise Drop("auth")
        ah = {"spi": int.from_bytes(head[4:8], "big"), "seq": int.from_bytes(head[8:12], "big"),
              "verified": verify}
    elif proto != PROTO_VRRP:
        raise Drop("malformed")
    return judge_payload(payload, src, dst, ttl, spec, pseudo, strict, verify, ah)
