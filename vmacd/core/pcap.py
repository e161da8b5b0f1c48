"""A small capture reader for `vmacd decode --pcap`: classic pcap and pcapng, stdlib only.

Yields the IP packet of every record whose link layer we understand: Ethernet (with 802.1Q /
802.1ad tags), Linux cooked capture v1 (SLL) and v2 (SLL2), raw IP. Other records are skipped.
A file that is not a capture, or is cut inside a header, raises PcapError (a ValueError).
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (101, 12, 14)       # LINKTYPE_RAW and the two historical DLT_RAW values
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276
ETHERTYPES_IP = (0x0800, 0x86DD)
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
               b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}   # usec and nsec
PCAPNG_SHB = 0x0A0D0D0A
MAX_BLOCK = 1 << 26                # refuse absurd record sizes (corrupt file) rather than allocate


class PcapError(ValueError):
    """The file is not a readable pcap/pcapng capture."""


@dataclass(frozen=True)
class Record:
    """One captured packet: 1-based record number, link type, IP packet (None if not IP)."""

    number: int
    linktype: int
    ip: bytes | None


def read_records(stream: BinaryIO) -> Iterator[Record]:
    """Every record of a pcap or pcapng stream, with its IP packet extracted."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise PcapError("file too short to be a capture")
    if magic in PCAP_MAGICS:
        yield from _read_pcap(stream, PCAP_MAGICS[magic])
    elif struct.unpack("<I", magic)[0] == PCAPNG_SHB:
        yield from _read_pcapng(stream)
    else:
        raise PcapError(f"not a pcap or pcapng file (magic {magic.hex()})")


def _need(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise PcapError(f"capture truncated inside {what}")
    return data


def _read_pcap(stream: BinaryIO, order: str) -> Iterator[Record]:
    header = _need(stream, 20, "the pcap file header")
    linktype = struct.unpack(order + "16xI", header)[0] & 0x0FFFFFFF
    number = 0
    while True:
        rec = stream.read(16)
        if not rec:
            return
        if len(rec) < 16:
            raise PcapError(f"capture truncated inside record {number + 1} header")
        caplen = struct.unpack(order + "8xI4x", rec)[0]
        if caplen > MAX_BLOCK:
            raise PcapError(f"record {number + 1} claims {caplen} bytes: corrupt capture")
        number += 1
        yield Record(number, linktype, ip_of(linktype, _need(stream, caplen, f"record {number}")))


def _read_pcapng(stream: BinaryIO) -> Iterator[Record]:
    order, number, first = "<", 0, True
    links: list[int] = []
    while True:
        btype_raw = b"\x0a\x0d\x0d\x0a" if first else stream.read(4)
        if not btype_raw:
            return
        if len(btype_raw) < 4:
            raise PcapError("capture truncated inside a block header")
        if first or btype_raw == b"\x0a\x0d\x0d\x0a":
            order, links = _pcapng_shb(stream), []
            first = False
            continue
        btype, blen = struct.unpack(order + "II", btype_raw + _need(stream, 4, "a block header"))
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            raise PcapError(f"pcapng block of invalid length {blen}")
        body = _need(stream, blen - 12, "a block")
        _need(stream, 4, "a block trailer")
        if btype == 1 and len(body) >= 8:                     # Interface Description Block
            links.append(struct.unpack_from(order + "H", body)[0])
        elif btype in (3, 6):                                 # Simple / Enhanced Packet Block
            rec = _pcapng_packet(btype, body, order, links)
            if rec is not None:
                number += 1
                yield Record(number, rec[0], ip_of(rec[0], rec[1]))


def _pcapng_shb(stream: BinaryIO) -> str:
    """Read a Section Header Block after its type; return the section's byte order."""
    raw_len, bom = _need(stream, 4, "a section header"), _need(stream, 4, "a section header")
    if bom == b"\x4d\x3c\x2b\x1a":
        order = "<"
    elif bom == b"\x1a\x2b\x3c\x4d":
        order = ">"
    else:
        raise PcapError("pcapng section header with an unknown byte-order magic")
    blen = struct.unpack(order + "I", raw_len)[0]
    if blen < 28 or blen % 4 or blen > MAX_BLOCK:
        raise PcapError(f"pcapng section header of invalid length {blen}")
    _need(stream, blen - 12, "a section header")
    return order


def _pcapng_packet(btype: int, body: bytes, order: str,
                   links: list[int]) -> tuple[int, bytes] | None:
    if btype == 3:
        if not links or len(body) < 4:
            raise PcapError("simple packet block before any interface description")
        return links[0], body[4:]
    if len(body) < 20:
        raise PcapError("enhanced packet block too short")
    ifid, caplen = struct.unpack_from(order + "I8xI", body)
    if ifid >= len(links) or caplen > len(body) - 20:
        raise PcapError("enhanced packet block names an unknown interface or overruns")
    return links[ifid], body[20:20 + caplen]


def ip_of(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside one link-layer frame, or None when the frame carries something else."""
    if linktype in LINKTYPE_RAW or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return frame if frame and frame[0] >> 4 in (4, 6) else None
    if linktype == LINKTYPE_ETHERNET:
        off = 12
        while len(frame) >= off + 2 and struct.unpack_from("!H", frame, off)[0] in VLAN_TPIDS:
            off += 4
        return _by_ethertype(frame, off)
    if linktype == LINKTYPE_LINUX_SLL:
        return _by_ethertype(frame, 14)
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return frame[20:] if struct.unpack_from("!H", frame)[0] in ETHERTYPES_IP else None
    return None


def _by_ethertype(frame: bytes, off: int) -> bytes | None:
    if len(frame) < off + 2:
        return None
    return frame[off + 2:] if struct.unpack_from("!H", frame, off)[0] in ETHERTYPES_IP else None
