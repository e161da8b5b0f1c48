"""VRRP advertisement codec (RFC 9568 §5 for v3, RFC 3768 §5 for v2). No sockets, no clock.

The codec judges the packet (length, version, type, checksum, TTL, address count, auth); the
state machine judges what it means (VRID, priority, interval). Every malformed input raises
PacketError whose `reason` is exactly a `vmacd_packets_dropped_total{reason}` label (docs/operations.md).
"""
from __future__ import annotations

import functools
import ipaddress
import struct
import sys
from typing import TypedDict

from vmacd.core import auth as _auth
from vmacd.core.proto import (
    AH_LEN,
    CHECKSUM_NO_PSEUDO,
    CHECKSUM_PSEUDO,
    CHECKSUM_V2,
    DROP_REASONS,
    HEADER_LEN,
    IPPROTO_AH,
    TTL,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    VRRP_PROTO,
    Advertisement,
    IPAddress,
    PacketError,
    UsageError,
    mac_bytes,
)

__all__ = [
    "CHECKSUM_NO_PSEUDO", "CHECKSUM_PSEUDO", "CHECKSUM_V2", "DROP_REASONS", "VRRP_GROUP_V4",
    "VRRP_GROUP_V6", "VRRP_PROTO", "Advertisement", "IPAddress", "PacketError", "UsageError",
    "build_frame", "build_ip_packet", "decode", "decode_ip_packet", "encode", "inet_checksum",
    "inet_sum", "pseudo_header",
]



class AhInfo(TypedDict):
    """What the IPsec AH header of a received IPv4 advertisement carried (keepalived style)."""

    spi: int
    seq: int
    verified: bool

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IPV4_HEADER_LEN, IPV6_HEADER_LEN = 20, 40
TOS_NETWORK_CONTROL = 0xC0           # DSCP CS6, as keepalived and FRR send


# ---------------------------------------------------------------------------------------------
# Checksums (RFC 1071)
# ---------------------------------------------------------------------------------------------

_LITTLE = sys.byteorder == "little"


def inet_sum(data: bytes | bytearray, start: int = 0) -> int:
    """Folded one's-complement sum of the 16-bit words of `data` (odd length: zero padded).

    Adds native-order words and swaps the folded result (RFC 1071 §2(B): byte order does not
    matter for this sum). `start` is another folded sum, in network order, to add in.
    """
    if len(data) & 1:
        data = bytes(data) + b"\0"
    total = _fold(sum(memoryview(data).cast("H")))
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return _fold(total + start)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def inet_checksum(data: bytes | bytearray, start: int = 0) -> int:
    """RFC 1071 checksum: one's complement of the one's-complement sum. A packet verifies when
    the checksum of all its bytes (checksum field included) is 0."""
    return ~inet_sum(data, start) & 0xFFFF


def pseudo_header(src: IPAddress, dst: IPAddress, length: int, proto: int = VRRP_PROTO) -> bytes:
    """IPv4 (RFC 768 style: src, dst, zero, protocol, length; 12 bytes) or IPv6 (RFC 8200 §8.1:
    src, dst, 32-bit upper-layer length, 3 zero bytes, next header; 40 bytes) pseudo-header."""
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, proto)


@functools.lru_cache(maxsize=1024)
def _pseudo_sum(src: IPAddress, dst: IPAddress, length: int) -> int:
    """The folded sum of a pseudo-header: the same few peers send all day (receive hot path)."""
    return inet_sum(pseudo_header(src, dst, length))


# ---------------------------------------------------------------------------------------------
# Encoding (send path)
# ---------------------------------------------------------------------------------------------

def _addr(value: object, what: str) -> IPAddress:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        # any value: ip_address() raises ValueError for what is not an address (caught below)
        return ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        raise UsageError(f"{what} is not an IP address: {value!r}") from None


def _check_template(adv: Advertisement, src: IPAddress, dst: IPAddress) -> None:
    """Refuse advertisements no RFC-abiding router may send (RFC 9568 §5, RFC 3768 §5)."""
    if adv.version not in (2, 3):
        raise UsageError(f"version must be 2 or 3, got {adv.version}")
    if adv.type != 1:
        raise UsageError(f"type must be 1 (ADVERTISEMENT), got {adv.type}")
    if not 1 <= adv.vrid <= 255:
        raise UsageError(f"vrid must be 1..255, got {adv.vrid}")
    if not 0 <= adv.priority <= 255:
        raise UsageError(f"priority must be 0..255, got {adv.priority}")
    if not 1 <= len(adv.addresses) <= 255:
        raise UsageError(f"an advertisement carries 1..255 addresses, got {len(adv.addresses)}")
    fam = src.version
    if dst.version != fam or any(a.version != fam for a in adv.addresses):
        raise UsageError("source, destination and every address must be of one family (§5.2.9)")
    if adv.version == 3 and not 1 <= adv.interval_cs <= 4095:
        raise UsageError(f"v3 interval must be 1..4095 centiseconds, got {adv.interval_cs}")
    if adv.version == 2:
        if fam == 6:
            raise UsageError("VRRPv2 is IPv4 only (RFC 3768)")
        if adv.interval_cs % 100 or not 100 <= adv.interval_cs <= 25500:
            raise UsageError(f"v2 interval must be whole seconds 1..255, got {adv.interval_cs} cs")
    if src in adv.addresses and adv.priority not in (0, 255):
        # only the address owner (priority 255; 0 when it leaves) lists its own primary address
        raise UsageError(f"source {src} is a virtual address; send from the interface's own (§5.1.1.1)")
    if fam == 6:
        if not src.is_link_local:
            raise UsageError(f"IPv6 source must be the interface's link-local, got {src} (§5.1.2.1)")
        if not adv.addresses[0].is_link_local and any(a.is_link_local for a in adv.addresses):
            raise UsageError(f"a link-local address in an IPv6 list comes first (§5.2.9), got "
                             f"{adv.addresses[0]} first")
    if src.is_multicast or src.is_unspecified:
        raise UsageError(f"source must be a unicast address, got {src}")


def _message(adv: Advertisement, auth: _auth.AuthSpec) -> bytearray:
    """The VRRP message with a zero checksum: header + addresses (+ v2 Authentication Data)."""
    addrs = b"".join(a.packed for a in adv.addresses)
    if adv.version == 3:
        if auth.type in ("pass", "ah"):
            raise UsageError(f"auth type {auth.type} exists only for VRRPv2")
        # Reserve nibble sent as 0 (§5.2.6); interval masked to 12 bits (§5.2.7).
        head = struct.pack("!BBBBHH", 0x31, adv.vrid, adv.priority, len(adv.addresses),
                           adv.interval_cs & 0x0FFF, 0)
        return bytearray(head + addrs)
    head = struct.pack("!BBBBBBH", 0x21, adv.vrid, adv.priority, len(adv.addresses),
                       _auth.V2_AUTH_BYTE[auth.type], adv.interval_cs // 100, 0)
    data = auth.padded_key if auth.type == "pass" else b"\0" * _auth.V2_AUTH_LEN
    return bytearray(head + addrs + data)


def _checksummed(msg: bytearray, version: int, src: IPAddress, dst: IPAddress, pseudo: bool) -> bytes:
    """Fill the checksum (§5.2.8): v2 over the message; v3 IPv6 always with the pseudo-header;
    v3 IPv4 with it when `pseudo` (keepalived/FRR), without it otherwise (RFC 9568 text)."""
    start = 0
    if version == 3 and (src.version == 6 or pseudo):
        start = inet_sum(pseudo_header(src, dst, len(msg)))
    struct.pack_into("!H", msg, 6, inet_checksum(msg, start))
    return bytes(msg)


@functools.lru_cache(maxsize=4096)
def _encoded(adv: Advertisement, src: IPAddress, dst: IPAddress, pseudo: bool,
             auth: _auth.AuthSpec) -> tuple[bytes, _auth.PreparedHmac | None]:
    """(message, HMAC prefix or None): everything of an advert that does not change per packet."""
    _check_template(adv, src, dst)
    message = _checksummed(_message(adv, auth), adv.version, src, dst, pseudo)
    if auth.type != "hmac-sha256":
        return message, None
    length = len(message) + _auth.HMAC_TRAILER_LEN
    prefix = _auth.hmac_prefix(auth, pseudo_header(src, dst, length), message)
    return message, prefix


def encode(adv: Advertisement, *, src: object, dst: object, pseudo_header: bool = True,
           auth: _auth.AuthSpec | None = None, counter: int | None = None) -> bytes:
    """The VRRP payload of `adv` from `src` to `dst` (what a raw IPPROTO 112 socket sends).

    Built once per distinct (adv, src, dst, pseudo_header, auth) and cached; with hmac-sha256 only
    the 28-byte trailer for `counter` is computed per call. `auth` ah gives the v2 message with
    Auth Type 2 and zero auth data: the AH itself is added by build_ip_packet(). UsageError when
    `adv` is not sendable (bad field, VIP as source, a link-local IPv6 address that is not first,
    ...). An IPv6 list without any link-local address (keepalived's and FRR's usual list) is
    sendable: whether to send one (RFC 9568 §5.2.9 wants the link-local first) is the
    configuration's call (`ipv6_link_local_first`).
    """
    spec = auth or _auth.NO_AUTH
    s, d = _addr(src, "src"), _addr(dst, "dst")
    message, prefix = _encoded(adv, s, d, bool(pseudo_header), spec)
    if prefix is None:
        if counter is not None and spec.type != "ah":
            raise UsageError(f"counter is only used with hmac-sha256 (auth is {spec.type})")
        return message
    if counter is None:
        raise UsageError("hmac-sha256 needs a counter (monotonically increasing per sender)")
    return message + _auth.hmac_trailer(spec, prefix, counter)


# ---------------------------------------------------------------------------------------------
# Decoding (receive path). Order of checks, first failure wins: ttl, length (header), version,
# type, addresses (count 0), length (complete; trailing bytes refused), checksum, interval,
# addresses (IPv6 first link-local, only with strict_link_local), auth. docs/wire.md explains each.
# ---------------------------------------------------------------------------------------------

def decode(payload: bytes, *, src: object, dst: object, ttl: int | None,
           auth: _auth.AuthSpec | None = None, pseudo_header: bool = True,
           strict_checksum: bool = False, verify_auth: bool = True,
           strict_link_local: bool = False) -> Advertisement:
    """Judge one received VRRP payload (RFC 9568 §7.1, RFC 3768 §7.1); PacketError when refused.

    `ttl` is the IPv4 TTL or the IPv6 hop limit from the IPV6_HOPLIMIT cmsg; None (cmsg missing)
    is refused like any TTL other than 255. `auth` None means type none. `verify_auth=False`
    (for `vmacd decode` without a key) reports the auth a packet carries without checking it.
    IPsec AH cannot be judged from the payload: use decode_ip_packet() for it.
    An IPv6 advert whose first address is not link-local is accepted and marked
    (`first_not_link_local`); `strict_link_local=True` refuses it ("addresses"), as RFC 9568 §7.1
    (erratum 8300) says.
    """
    spec = auth or _auth.NO_AUTH
    if verify_auth and spec.type == "ah":
        raise UsageError("AH covers the IP header: decode AH packets with decode_ip_packet()")
    return _decode(bytes(payload), _addr(src, "src"), _addr(dst, "dst"), ttl, spec,
                   bool(pseudo_header), strict_checksum, verify_auth, None, strict_link_local)


def _decode(p: bytes, src: IPAddress, dst: IPAddress, ttl: int | None, spec: _auth.AuthSpec,
            pseudo: bool, strict: bool, verify: bool, ah: AhInfo | None,
            strict_ll: bool = False) -> Advertisement:
    if ttl is None:
        raise PacketError("ttl", "TTL / hop limit unknown (IPV6_HOPLIMIT cmsg missing)")
    if ttl != TTL:
        raise PacketError("ttl", f"TTL / hop limit {ttl}, must be 255")
    if len(p) < HEADER_LEN:
        raise PacketError("length", f"{len(p)} bytes, shorter than the 8-byte VRRP header")
    version, vtype, count = p[0] >> 4, p[0] & 0x0F, p[3]
    if version not in (2, 3):
        raise PacketError("version", f"version {version}, expected 2 or 3")
    if version == 2 and src.version == 6:
        raise PacketError("version", "VRRPv2 over IPv6 does not exist (RFC 3768 is IPv4 only)")
    if vtype != 1:
        raise PacketError("type", f"type {vtype}, only 1 (ADVERTISEMENT) is defined")
    if count == 0:
        raise PacketError("addresses", "address count is 0")
    alen = 4 if src.version == 4 else 16
    std = HEADER_LEN + count * alen + (_auth.V2_AUTH_LEN if version == 2 else 0)
    trailer = _trailer_len(p, std, version, spec, verify)
    if len(p) != std + trailer:
        want = std + trailer
        raise PacketError("length", f"{len(p)} bytes, {'too long' if len(p) > want else 'too short'}"
                                    f": expected {want} for {count} address(es)")
    message = p[:std]
    form = _verify_checksum(message, version, src, dst, pseudo, strict)
    interval = (struct.unpack_from("!H", p, 4)[0] & 0x0FFF) if version == 3 else p[5] * 100
    if interval == 0:
        raise PacketError("interval", "advertisement interval is 0")
    ctor = ipaddress.IPv4Address if alen == 4 else ipaddress.IPv6Address
    addrs = tuple(ctor(p[i:i + alen]) for i in range(HEADER_LEN, HEADER_LEN + count * alen, alen))
    not_ll = alen == 16 and not addrs[0].is_link_local
    if not_ll and strict_ll:
        raise PacketError("addresses", f"first IPv6 address {addrs[0]} is not link-local")
    atype, info = _judge_auth(p, std, version, src, dst, spec, verify, ah)
    return Advertisement(version=version, vrid=p[1], priority=p[2], interval_cs=interval,
                         addresses=addrs, src=src, dst=dst, ttl=ttl, type=vtype, checksum=form,
                         auth_type=atype, auth_info=info, first_not_link_local=not_ll)


def _trailer_len(p: bytes, std: int, version: int, spec: _auth.AuthSpec, verify: bool) -> int:
    """Bytes expected after the standard message: 28 for an hmac-sha256 trailer, else 0."""
    if verify:
        return _auth.HMAC_TRAILER_LEN if spec.type == "hmac-sha256" else 0
    if version == 2 and len(p) > 4:
        return _auth.HMAC_TRAILER_LEN if p[4] == _auth.V2_AUTH_HMAC else 0
    has = len(p) == std + _auth.HMAC_TRAILER_LEN and p[std] == _auth.HMAC_TRAILER_VERSION
    return _auth.HMAC_TRAILER_LEN if has else 0


def _verify_checksum(msg: bytes, version: int, src: IPAddress, dst: IPAddress,
                     pseudo: bool, strict: bool) -> str:
    """The checksum form that verifies (§5.2.8), or PacketError("checksum").

    IPv4 v3: the configured form is tried first, then (unless strict) the other one.
    """
    if version == 2:
        if inet_sum(msg) == 0xFFFF:
            return CHECKSUM_V2
        raise PacketError("checksum", "VRRPv2 checksum does not verify")
    phdr_sum = _pseudo_sum(src, dst, len(msg))
    if src.version == 6:
        if inet_sum(msg, phdr_sum) == 0xFFFF:
            return CHECKSUM_PSEUDO
        raise PacketError("checksum", "VRRPv3 IPv6 checksum (with pseudo-header) does not verify")
    forms = [(CHECKSUM_PSEUDO, phdr_sum), (CHECKSUM_NO_PSEUDO, 0)]
    if not pseudo:
        forms.reverse()
    for name, start in forms[:1] if strict else forms:
        if inet_sum(msg, start) == 0xFFFF:
            return name
    which = f"in the configured form {forms[0][0]} (strict)" if strict else \
        "with or without the pseudo-header"
    raise PacketError("checksum", f"VRRPv3 IPv4 checksum does not verify {which}")


def _judge_auth(p: bytes, std: int, version: int, src: IPAddress, dst: IPAddress,
                spec: _auth.AuthSpec, verify: bool, ah: AhInfo | None
                ) -> tuple[str, tuple[tuple[str, object], ...]]:
    """(auth_type, auth_info) of an otherwise valid packet; PacketError("auth") on mismatch."""
    if version == 2:
        byte = p[4]
        carried = _auth.V2_AUTH_NAME.get(byte)
        if carried is None:
            raise PacketError("auth", f"unknown VRRPv2 auth type {byte}")
    else:
        carried = "hmac-sha256" if len(p) > std else "none"
    if carried == "ah" and ah is None:
        raise PacketError("auth", "auth type 2 (IPsec AH) but the packet has no AH header")
    if carried != "ah" and ah is not None:
        raise PacketError("auth", f"AH header but VRRP auth type is {carried}")
    if verify and carried != spec.type:
        raise PacketError("auth", f"packet uses auth {carried}, configured {spec.type}")
    if carried == "pass":
        ok = _auth.password_matches(spec, p[std - 8:std]) if verify else None
        if ok is False:
            raise PacketError("auth", "wrong VRRPv2 password")
        return carried, (("verified", bool(verify)),)
    if carried == "hmac-sha256":
        trailer = p[std:]
        if trailer[2:4] != b"\0\0":
            # the tag is computed with these bytes as 0 (docs/hmac-sha256.md): anything else
            # would be an unauthenticated change to the packet
            raise PacketError("auth", "hmac-sha256 trailer: reserved bytes are not 0")
        if verify:
            phdr = pseudo_header(src, dst, len(p))
            counter = _auth.verify_trailer(spec, phdr, p[:std], trailer)
            return carried, (("counter", counter), ("key_id", spec.key_id), ("verified", True))
        key_id, counter = _auth.parse_trailer(trailer)
        return carried, (("counter", counter), ("key_id", key_id), ("verified", False))
    if ah is not None:                       # carried == "ah" (checked above)
        return carried, (("spi", ah["spi"]), ("seq", ah["seq"]), ("verified", ah["verified"]))
    return carried, ()


# ---------------------------------------------------------------------------------------------
# IP packets and Ethernet frames (the daemon sends with AF_PACKET from the vMAC device)
# ---------------------------------------------------------------------------------------------

def _ipv4_header(src: IPAddress, dst: IPAddress, length: int, proto: int, ident: int,
                 tos: int) -> bytearray:
    """20-byte IPv4 header, TTL 255, no fragmentation, header checksum filled."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, IPV4_HEADER_LEN + length, ident, 0,
                                TTL, proto, 0, src.packed, dst.packed))
    struct.pack_into("!H", hdr, 10, inet_checksum(hdr))
    return hdr


def build_ip_packet(adv: Advertisement, *, src: object, dst: object, pseudo_header: bool = True,
                    auth: _auth.AuthSpec | None = None, counter: int | None = None, ident: int = 0,
                    tos: int = TOS_NETWORK_CONTROL) -> bytes:
    """A complete IPv4 (TTL 255, protocol 112, or 51 with AH) or IPv6 (hop limit 255, next
    header 112) packet carrying `adv`. `counter` is the hmac-sha256 counter or the AH sequence
    number (1..2**32-1, keepalived starts at 1). `ident` is the IPv4 Identification field and
    `tos` the IPv4 TOS / IPv6 traffic class (CS6 by default, as keepalived and FRR)."""
    spec = auth or _auth.NO_AUTH
    s, d = _addr(src, "src"), _addr(dst, "dst")
    if not 0 <= ident <= 0xFFFF or not 0 <= tos <= 0xFF:
        raise UsageError(f"ident must be 0..65535 and tos 0..255, got {ident}, {tos}")
    if spec.type == "ah":
        if s.version != 4 or adv.version != 2:
            raise UsageError("IPsec AH authentication exists only for VRRPv2 over IPv4")
        if counter is None:
            raise UsageError("AH needs a sequence number (counter)")
        payload = encode(adv, src=s, dst=d, pseudo_header=pseudo_header, auth=spec)
        ah = _auth.ah_header(s.packed, counter)
        hdr = _ipv4_header(s, d, len(ah) + len(payload), IPPROTO_AH, ident, tos)
        icv = _auth.ah_icv(spec, bytes(hdr), ah, payload, unicast=not d.is_multicast)
        return bytes(hdr) + ah[:12] + icv + payload
    payload = encode(adv, src=s, dst=d, pseudo_header=pseudo_header, auth=spec, counter=counter)
    if s.version == 4:
        return bytes(_ipv4_header(s, d, len(payload), VRRP_PROTO, ident, tos)) + payload
    head = struct.pack("!IHBB", (6 << 28) | (tos << 20), len(payload), VRRP_PROTO, TTL)
    return head + s.packed + d.packed + payload


def decode_ip_packet(data: bytes, auth: _auth.AuthSpec | None = None, *, pseudo_header: bool = True,
                     strict_checksum: bool = False, verify_auth: bool = True,
                     strict_link_local: bool = False) -> Advertisement:
    """Judge a whole IP packet (IPv4 incl. AH, or IPv6) carrying VRRP; PacketError when refused.

    IPv4: version, IHL, total length (bytes beyond it, e.g. Ethernet padding, are cut off),
    header checksum ("checksum"), no fragments, protocol 112 or 51 (AH then 112). IPv6: payload
    length, next header 112 (extension headers are not accepted: "malformed"). Then decode()
    (`strict_link_local` as there).
    """
    spec = auth or _auth.NO_AUTH
    data = bytes(data)
    if not data:
        raise PacketError("length", "empty packet")
    if data[0] >> 4 == 6:
        return _decode_ipv6(data, spec, pseudo_header, strict_checksum, verify_auth, strict_link_local)
    if data[0] >> 4 != 4:
        raise PacketError("malformed", f"IP version {data[0] >> 4}, expected 4 or 6")
    ihl = (data[0] & 0x0F) * 4
    if ihl < IPV4_HEADER_LEN:
        raise PacketError("malformed", f"IPv4 header length {ihl} < 20")
    if len(data) < ihl:
        raise PacketError("length", f"{len(data)} bytes, shorter than the IPv4 header ({ihl})")
    total, frag, ttl, proto = struct.unpack_from("!2xH2xHBB", data)
    if not ihl <= total <= len(data):
        raise PacketError("length", f"IPv4 total length {total}, {len(data)} bytes captured")
    if inet_sum(data[:ihl]) != 0xFFFF:
        raise PacketError("checksum", "IPv4 header checksum does not verify")
    if frag & 0x3FFF:
        raise PacketError("malformed", "IPv4 fragment (VRRP adverts are never fragmented)")
    src, dst = ipaddress.IPv4Address(data[12:16]), ipaddress.IPv4Address(data[16:20])
    payload = data[ihl:total]
    ah: AhInfo | None = None
    if proto == IPPROTO_AH:
        ah, payload = _strip_ah(data[:ihl], payload, src, dst, spec, verify_auth)
    elif proto != VRRP_PROTO:
        raise PacketError("malformed", f"IP protocol {proto}, not VRRP (112) or AH (51)")
    return _decode(payload, src, dst, ttl, spec, pseudo_header, strict_checksum, verify_auth, ah)


def _decode_ipv6(data: bytes, spec: _auth.AuthSpec, pseudo: bool, strict: bool,
                 verify: bool, strict_ll: bool) -> Advertisement:
    if len(data) < IPV6_HEADER_LEN:
        raise PacketError("length", f"{len(data)} bytes, shorter than the IPv6 header")
    plen, nxt, hlim = struct.unpack_from("!4xHBB", data)
    if IPV6_HEADER_LEN + plen > len(data):
        raise PacketError("length", f"IPv6 payload length {plen}, {len(data) - 40} bytes captured")
    if nxt != VRRP_PROTO:
        raise PacketError("malformed", f"IPv6 next header {nxt}, not VRRP (112)")
    src, dst = ipaddress.IPv6Address(data[8:24]), ipaddress.IPv6Address(data[24:40])
    payload = data[IPV6_HEADER_LEN:IPV6_HEADER_LEN + plen]
    return _decode(payload, src, dst, hlim, spec, pseudo, strict, verify, None, strict_ll)


def _strip_ah(ip_header: bytes, payload: bytes, src: IPAddress, dst: IPAddress,
              spec: _auth.AuthSpec, verify: bool) -> tuple[AhInfo, bytes]:
    """Parse (and with verify, check) keepalived-style AH; return (info, VRRP payload)."""
    if len(payload) < AH_LEN:
        raise PacketError("length", f"{len(payload)} bytes after the IPv4 header, AH needs 24")
    if payload[0] != VRRP_PROTO or payload[1] != _auth.AH_PAYLOAD_LEN:
        raise PacketError("malformed", "AH is not HMAC-96 over VRRP (next header / length)")
    ah, vrrp = payload[:AH_LEN], payload[AH_LEN:]
    if verify:
        if spec.type != "ah":
            raise PacketError("auth", f"IPsec AH packet, configured auth {spec.type}")
        _auth.verify_ah(spec, ip_header, ah, vrrp, unicast=not dst.is_multicast)
        if ah[4:8] != src.packed:
            raise PacketError("auth", "AH SPI is not the sender's address (keepalived convention)")
    info: AhInfo = {"spi": int.from_bytes(ah[4:8], "big"), "seq": int.from_bytes(ah[8:12], "big"),
                    "verified": bool(verify)}
    return info, vrrp


def build_frame(src_mac: str, ip_packet: bytes, dst_mac: str | None = None) -> bytes:
    """Ethernet II frame around an IP packet from build_ip_packet().

    Destination: `dst_mac` when given (unicast peers), else the multicast MAC of the IP
    destination (RFC 1112 §6.4 / RFC 2464 §7: 01:00:5e:00:00:12 for 224.0.0.18,
    33:33:00:00:00:12 for ff02::12). Not padded to 60 bytes: the NIC pads short frames.
    """
    if not ip_packet or ip_packet[0] >> 4 not in (4, 6):
        raise UsageError("ip_packet must start with an IPv4 or IPv6 header")
    v6 = ip_packet[0] >> 4 == 6
    if dst_mac is None:
        dst = ipaddress.IPv6Address(ip_packet[24:40]) if v6 else ipaddress.IPv4Address(ip_packet[16:20])
        if not dst.is_multicast:
            raise UsageError(f"unicast destination {dst} needs dst_mac")
        packed = dst.packed
        dmac = b"\x33\x33" + packed[12:] if v6 else b"\x01\x00\x5e" + bytes((packed[1] & 0x7F,)) + packed[2:]
    else:
        dmac = mac_bytes(dst_mac)
    return dmac + mac_bytes(src_mac) + struct.pack("!H", ETH_P_IPV6 if v6 else ETH_P_IP) + ip_packet
