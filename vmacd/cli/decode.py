"""`vmacd decode [HEX ...] [--pcap FILE]`: VRRP advertisements to JSON lines (docs/operations.md).

Exit codes: 0 every packet decoded, 1 any refused, 2 unusable call (bad hex, unreadable file).
"""
from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Iterator
from typing import TextIO

from vmacd.core import wire
from vmacd.core.auth import AuthSpec
from vmacd.core.pcap import PcapError, read_records

HELP = "decode VRRP advertisements (hex IP packets or a pcap/pcapng capture) to JSON lines"

_IP_PROTOS = (wire.VRRP_PROTO, 51)


class CallError(Exception):
    """The call cannot be carried out (exit 2)."""


def setargs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hex", nargs="*", metavar="HEX",
                        help="an IP packet in hex (spaces, ':' and a 0x prefix are ignored)")
    parser.add_argument("--pcap", metavar="FILE",
                        help="decode every VRRP packet (also AH-wrapped) of a pcap/pcapng file")
    parser.add_argument("--auth", choices=("none", "pass", "ah", "hmac-sha256"),
                        help="verify this authentication (default: report it unverified)")
    parser.add_argument("--key", help="the auth key or password (text)")
    parser.add_argument("--key-file", metavar="FILE", help="read the auth key from FILE (raw bytes)")
    parser.add_argument("--strict-checksum", choices=("pseudo-header", "no-pseudo-header"),
                        help="IPv4 VRRPv3: accept only this checksum form (default: either)")
    parser.add_argument("--strict-link-local", action="store_true",
                        help="IPv6: refuse adverts whose first address is not link-local (RFC 9568 "
                             "§7.1); by default they are decoded with \"first_not_link_local\": true")


def cmdline(args: argparse.Namespace) -> int:
    try:
        spec = _auth_spec(args)
        packets = list(_hex_packets(args.hex))
        if not packets and not args.pcap:
            raise CallError("give HEX packets or --pcap FILE")
        refused = 0
        for packet in packets:
            refused += _emit(_decode(packet, spec, args), sys.stdout)
        if args.pcap:
            refused += _decode_pcap(args.pcap, spec, args, sys.stdout)
    except CallError as err:
        print(f"vmacd decode: {err}", file=sys.stderr)
        return 2
    return 1 if refused else 0


def _auth_spec(args: argparse.Namespace) -> AuthSpec | None:
    if args.auth is None:
        if args.key is not None or args.key_file is not None:
            raise CallError("--key/--key-file need --auth")
        return None
    key = b""
    if args.key_file is not None:
        try:
            with open(args.key_file, "rb") as fh:
                key = fh.read().rstrip(b"\r\n")
        except OSError as err:
            raise CallError(f"cannot read key file {args.key_file}: {err.strerror}") from None
    elif args.key is not None:
        key = args.key.encode()
    try:
        return AuthSpec(args.auth, key)
    except ValueError as err:
        raise CallError(f"--auth {args.auth}: {err}") from None


def _hex_packets(items: list[str]) -> Iterator[bytes]:
    for n, item in enumerate(items, 1):
        text = item.strip()
        if text[:2].lower() == "0x":
            text = text[2:]
        text = "".join(ch for ch in text if ch not in string.whitespace + ":")
        if not text or len(text) % 2 or any(ch not in string.hexdigits for ch in text):
            raise CallError(f"argument {n} is not an even number of hex digits: {item[:40]!r}")
        yield bytes.fromhex(text)


def _decode(packet: bytes, spec: AuthSpec | None, args: argparse.Namespace) -> dict[str, object]:
    strict = args.strict_checksum is not None
    try:
        adv = wire.decode_ip_packet(
            packet, spec, verify_auth=spec is not None, strict_checksum=strict,
            pseudo_header=args.strict_checksum != "no-pseudo-header",
            strict_link_local=args.strict_link_local)
    except wire.PacketError as err:
        return {"error": err.reason, "detail": err.detail}
    return to_json(adv)


def to_json(adv: wire.Advertisement) -> dict[str, object]:
    """The JSON object of a decoded advertisement (keys: docs/operations.md)."""
    auth: dict[str, object] = {"type": adv.auth_type}
    auth.update(dict(adv.auth_info))
    out = {
        "version": adv.version, "type": adv.type, "vrid": adv.vrid, "priority": adv.priority,
        "interval_ms": adv.interval_cs * 10, "addresses": [str(a) for a in adv.addresses],
        "src": str(adv.src), "dst": str(adv.dst), "ttl": adv.ttl, "checksum": adv.checksum,
        "auth": auth,
    }
    if adv.first_not_link_local:    # keepalived's / FRR's usual IPv6 list (RFC 9568 §5.2.9 departs)
        out["first_not_link_local"] = True
    return out


def _emit(obj: dict[str, object], out: TextIO) -> int:
    out.write(json.dumps(obj) + "\n")
    return 1 if "error" in obj else 0


def _is_vrrp(ip: bytes) -> bool:
    """Does this IP packet carry VRRP (directly, or IPv4 AH whose next header is VRRP)?"""
    if ip[0] >> 4 == 6:
        return len(ip) > 6 and ip[6] == wire.VRRP_PROTO
    if len(ip) < 20 or ip[9] not in _IP_PROTOS:
        return False
    ihl = (ip[0] & 0x0F) * 4
    return ip[9] == wire.VRRP_PROTO or (len(ip) > ihl and ip[ihl] == wire.VRRP_PROTO)


def _decode_pcap(path: str, spec: AuthSpec | None, args: argparse.Namespace, out: TextIO) -> int:
    refused = 0
    try:
        with open(path, "rb") as fh:
            for rec in read_records(fh):
                if rec.ip is None or not _is_vrrp(rec.ip):
                    continue
                obj = {"frame": rec.number, **_decode(rec.ip, spec, args)}
                refused += _emit(obj, out)
    except OSError as err:
        raise CallError(f"cannot read {path}: {err.strerror or err}") from None
    except PcapError as err:
        raise CallError(f"{path}: {err}") from None
    return refused
