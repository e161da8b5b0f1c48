"""VRRP authentication, layered on the codec (vmacd/core/wire.py). Pure: no sockets, no clock.

Four kinds, chosen by `AuthSpec.type`:

* ``none``        v3 carries no auth field; v2 sends Auth Type 0 and eight zero bytes.
* ``pass``        VRRPv2 simple text password (RFC 2338 §5.3.6.1): Auth Type 1 and the password,
                  zero padded to 8 bytes, in the Authentication Data field. No protection at all
                  against anyone on the LAN; kept for keepalived interop only.
* ``ah``          VRRPv2 over IPsec AH with HMAC-MD5-96 (RFC 2338 §5.3.6.2, RFC 2402, RFC 2403),
                  the way keepalived does it (vrrp.c / vrrp_ipsecah.h):
                  IP protocol 51; AH = next header 112, payload len 4 (24-byte AH), reserved 0,
                  SPI = the sender's IPv4 source address, 32-bit sequence number, 12-byte ICV.
                  ICV = HMAC-MD5(key, IP header with TOS, fragment word and header checksum
                  zeroed [and TTL zeroed when the destination is unicast] + AH with the ICV zeroed
                  + the VRRP message)[:12]. The HMAC key is the password zero padded to 8 bytes
                  (keepalived keeps it in its 8-byte auth_data), so keys are 1..8 bytes.
                  The VRRP header says Auth Type 2 and its 8 Authentication Data bytes are zero.
* ``hmac-sha256`` vmacd extension for v2 and v3; wire format in docs/hmac-sha256.md:
                  a 28-byte trailer after the standard message:
                  ``version(1)=1 | key_id(1) | reserved(2)=0 | counter(8) | tag(16)``,
                  tag = HMAC-SHA256(key, pseudo-header + message + trailer[0:12])[:16].
                  v2 messages say Auth Type 254 (private use) so a v2 peer configured for another
                  kind drops them as an auth mismatch.

Replay protection is stateful and lives in `ReplayGuard`, which each instance keeps.

The HMACs are the standard library's (`hmac` over `hashlib`), which run on the system's OpenSSL:
a prepared context is copied per packet, so an advertisement costs one small update.
"""
from __future__ import annotations

import functools
import hashlib
import hmac as _hmac
from dataclasses import dataclass, field

from vmacd.core.proto import AH_LEN, IPPROTO_AH, VRRP_PROTO, Advertisement, PacketError, UsageError

AUTH_TYPES = ("none", "pass", "ah", "hmac-sha256")

# VRRPv2 Auth Type byte values (RFC 2338 §5.3.6; 254 is our private value for hmac-sha256).
V2_AUTH_NONE = 0
V2_AUTH_PASS = 1
V2_AUTH_AH = 2
V2_AUTH_HMAC = 254
V2_AUTH_BYTE = {"none": V2_AUTH_NONE, "pass": V2_AUTH_PASS, "ah": V2_AUTH_AH,
                "hmac-sha256": V2_AUTH_HMAC}
V2_AUTH_NAME = {v: k for k, v in V2_AUTH_BYTE.items()}

V2_AUTH_LEN = 8          # bytes of Authentication Data in a v2 message

HMAC_TRAILER_VERSION = 1
HMAC_TAG_LEN = 16        # HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows >= half)
HMAC_TRAILER_LEN = 4 + 8 + HMAC_TAG_LEN   # 28 bytes
HMAC_MIN_KEY = 16        # bytes; 32 random bytes recommended
COUNTER_MAX = 2**64 - 1

AH_PAYLOAD_LEN = 4       # AH length in 32-bit words minus 2 (RFC 2402 §2.2)
AH_ICV_LEN = 12          # HMAC-MD5-96
AH_SEQ_MAX = 2**32 - 1
__all__ = ["AH_LEN", "IPPROTO_AH"]   # re-exported for the codec's callers


@dataclass(frozen=True)
class AuthSpec:
    """How adverts of one instance are authenticated. `key` is raw bytes (never logged).

    `key_id` (0..255) only matters for hmac-sha256: it is carried in the trailer so keys can be
    rotated; a receiver refuses a trailer whose key_id differs from its own.
    """

    type: str = "none"
    key: bytes = field(default=b"", repr=False)
    key_id: int = 0

    def __post_init__(self) -> None:
        if self.type not in AUTH_TYPES:
            raise ValueError(f"auth type must be one of {', '.join(AUTH_TYPES)}, got {self.type!r}")
        if not isinstance(self.key, bytes):
            raise ValueError("auth key must be bytes")  # noqa: TRY004 - callers catch ValueError
        if self.type == "none" and self.key:
            raise ValueError("auth type none takes no key")
        if self.type in ("pass", "ah") and not 1 <= len(self.key) <= V2_AUTH_LEN:
            raise ValueError(f"{self.type} key must be 1..8 bytes (VRRPv2 carries 8), got {len(self.key)}")
        if self.type == "hmac-sha256" and len(self.key) < HMAC_MIN_KEY:
            raise ValueError(f"hmac-sha256 key must be at least {HMAC_MIN_KEY} bytes, got {len(self.key)}")
        if not 0 <= self.key_id <= 255:
            raise ValueError(f"key_id must be 0..255, got {self.key_id}")

    @property
    def padded_key(self) -> bytes:
        """The v2 password / AH key as carried: zero padded to 8 bytes."""
        return self.key.ljust(V2_AUTH_LEN, b"\0")


NO_AUTH = AuthSpec()


# --- simple password (v2) ----------------------------------------------------------------

def password_matches(spec: AuthSpec, data: bytes) -> bool:
    """Constant-time compare of the 8 received Authentication Data bytes with the password."""
    return _hmac.compare_digest(spec.padded_key, data)


# --- hmac-sha256 trailer -------------------------------------------------------------------

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class PreparedHmac:
    """HMAC (RFC 2104) with the key and a fixed message prefix absorbed once.

    `tag(suffix)` = HMAC(key, prefix + suffix), computed from copies of the prepared inner and
    outer hashes: two small updates per packet. (The standard library's `hmac` object does the
    same work but copies through a Python wrapper at about twice the cost; the results are equal,
    tests/unit/test_auth.py checks that.)
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, digest: str, prefix: bytes = b"") -> None:
        block = hashlib.new(digest).block_size
        if len(key) > block:
            key = hashlib.new(digest, key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.new(digest, key.translate(_IPAD))
        self._inner.update(prefix)
        self._outer = hashlib.new(digest, key.translate(_OPAD))

    def tag(self, suffix: bytes = b"") -> bytes:
        inner = self._inner.copy()
        inner.update(suffix)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=1024)
def hmac_prefix(spec: AuthSpec, pseudo: bytes, message: bytes) -> PreparedHmac:
    """HMAC-SHA256 prepared with pseudo-header + message + trailer head (without the counter).

    A master repeats the same message every interval, so senders and receivers alike reuse it:
    each advert then costs one counter update.
    """
    head = bytes((HMAC_TRAILER_VERSION, spec.key_id, 0, 0))
    return PreparedHmac(spec.key, "sha256", pseudo + message + head)


def hmac_trailer(spec: AuthSpec, prefix: PreparedHmac, counter: int) -> bytes:
    """The 28-byte trailer for `counter` (0..2**64-1), from a context made by hmac_prefix()."""
    if not isinstance(counter, int) or not 0 <= counter <= COUNTER_MAX:
        raise UsageError(f"hmac-sha256 counter must be an integer 0..2**64-1, got {counter!r}")
    cbytes = counter.to_bytes(8, "big")
    tag = prefix.tag(cbytes)[:HMAC_TAG_LEN]
    return bytes((HMAC_TRAILER_VERSION, spec.key_id, 0, 0)) + cbytes + tag


def parse_trailer(trailer: bytes) -> tuple[int, int]:
    """(key_id, counter) of a 28-byte trailer; PacketError("auth") when it is not ours."""
    if len(trailer) != HMAC_TRAILER_LEN or trailer[0] != HMAC_TRAILER_VERSION:
        raise PacketError("auth", "no vmacd hmac-sha256 trailer (version byte is not 1)")
    return trailer[1], int.from_bytes(trailer[4:12], "big")


def verify_trailer(spec: AuthSpec, pseudo: bytes, message: bytes, trailer: bytes) -> int:
    """Check a trailer; return its counter. PacketError("auth") on any mismatch."""
    key_id, counter = parse_trailer(trailer)
    if key_id != spec.key_id:
        raise PacketError("auth", f"hmac-sha256 key_id {key_id}, expected {spec.key_id}")
    tag = hmac_prefix(spec, pseudo, message).tag(trailer[4:12])[:HMAC_TAG_LEN]
    if not _hmac.compare_digest(tag, trailer[12:]):
        raise PacketError("auth", "hmac-sha256 tag does not match (forged, altered or wrong key)")
    return counter


# --- IPsec AH, HMAC-MD5-96 (v2, keepalived compatible) ---------------------------------------

def ah_header(spi: bytes, seq: int, icv: bytes = b"\0" * AH_ICV_LEN) -> bytes:
    """RFC 2402 AH for VRRP: next header 112, payload len 4, SPI (4 bytes), sequence, ICV."""
    if not isinstance(seq, int) or not 0 <= seq <= AH_SEQ_MAX:
        raise UsageError(f"AH sequence number must be an integer 0..2**32-1, got {seq!r}")
    return bytes((VRRP_PROTO, AH_PAYLOAD_LEN, 0, 0)) + spi + seq.to_bytes(4, "big") + icv


def ah_icv(spec: AuthSpec, ip_header: bytes, ah: bytes, vrrp: bytes, unicast: bool) -> bytes:
    """HMAC-MD5-96 over the IP header (mutable fields zeroed, as keepalived) + AH (ICV zeroed) + VRRP.

    Zeroed: TOS (byte 1), flags/fragment offset (bytes 6-7), header checksum (bytes 10-11), and
    the TTL (byte 8) only for unicast destinations, exactly as keepalived 2.x computes it.
    """
    hdr = bytearray(ip_header)
    hdr[1] = 0
    hdr[6:8] = b"\0\0"
    hdr[10:12] = b"\0\0"
    if unicast:
        hdr[8] = 0
    ctx = _hmac.new(spec.padded_key, digestmod=hashlib.md5)
    ctx.update(bytes(hdr))
    ctx.update(ah[:12])
    ctx.update(b"\0" * AH_ICV_LEN)
    ctx.update(vrrp)
    return ctx.digest()[:AH_ICV_LEN]


def verify_ah(spec: AuthSpec, ip_header: bytes, ah: bytes, vrrp: bytes, unicast: bool) -> None:
    """PacketError("auth") unless the ICV in `ah` matches."""
    want = ah_icv(spec, ip_header, ah, vrrp, unicast)
    if not _hmac.compare_digest(want, ah[12:AH_LEN]):
        raise PacketError("auth", "IPsec AH ICV does not match (forged, altered or wrong key)")


# --- replay protection -----------------------------------------------------------------------

class ReplayGuard:
    """Per (source address, VRID) highest counter seen; refuses anything not strictly higher.

    Works on authenticated adverts only: the hmac-sha256 `counter` or the AH `seq` from
    `Advertisement.auth_info`. Call `check()` after `decode()` accepted the packet and before the
    state machine sees it. A refused advert leaves the guard unchanged. Senders seed their counter
    from the wall clock (docs/hmac-sha256.md) so a restarted master is not refused.
    """

    def __init__(self) -> None:
        self._highest: dict[tuple[object, int, str], int] = {}

    def check(self, adv: Advertisement) -> None:
        """Accept (and remember) `adv`'s counter or raise PacketError("replay")."""
        info = dict(adv.auth_info)
        name = {"hmac-sha256": "counter", "ah": "seq"}.get(adv.auth_type)
        counter = None if name is None else info.get(name)
        if not isinstance(counter, int):
            raise PacketError("replay", f"auth type {adv.auth_type} carries no counter")
        if info.get("verified") is False:
            raise PacketError("replay", "counter of an unverified advertisement")
        key = (adv.src, adv.vrid, adv.auth_type)
        last = self._highest.get(key)
        if last is not None and counter <= last:
            raise PacketError(
                "replay", f"{name} {counter} from {adv.src} vrid {adv.vrid} not above {last}")
        self._highest[key] = counter
