"""LAN observers: frame capture (VRRP, AH, ARP, NA), bridge FDB watcher, neighbour readers.

The capture process runs inside a namespace, normally the bridge's, through :class:`Observer` /
:class:`FdbWatcher`::

    ip netns exec NS python -m vmaclab.observe --out F.jsonl [--iface p-r1 ...] [--fdb-bridge br0]
        [--kinds vrrp,arp] [--rx-only]

It prints ``ready`` once its sockets are bound and writes one JSON line per event (line-buffered, so a
live reader sees them at once).  Frame lines (``"type": "frame"``) carry ``t_ns`` (kernel receive
timestamp, SO_TIMESTAMPNS, converted to CLOCK_MONOTONIC ns), ``ifname``, ``dir`` (``rx``: received on
that interface -- on a bridge port, *sent by the node behind it*; ``tx``: sent out of it), ``src_mac``,
``dst_mac``, ``kind`` (``vrrp`` | ``arp`` | ``na`` | ``other``) and per kind:

* vrrp: ``version``, ``vrrp_type``, ``vrid``, ``priority``, ``interval_ms``, ``src_ip``, ``dst_ip``,
  ``ttl``, ``count``, ``ah`` (carried in IPsec AH, IP protocol 51)
* arp: ``op`` (1 request, 2 reply), ``sender_mac``, ``src_ip``, ``dst_ip``, ``gratuitous``
* na: ``src_ip``, ``dst_ip``, ``target``, ``override``, ``solicited``, ``router``
* other: ``ethertype`` and, for IP, ``src_ip``, ``dst_ip``, ``proto``

FDB lines (``"type": "fdb"``) come from RTM_NEWNEIGH/RTM_DELNEIGH netlink events for AF_BRIDGE:
``t_ns`` (monotonic ns when read), ``event`` (``new`` | ``del`` | ``dump``), ``mac``, ``port``,
``vlan``, ``permanent``.  Only the standard library is imported by the capture process.
"""
from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import select
import signal
import socket
import struct
import subprocess
import sys
import time

from vmaclab.prober import NsProcess

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23   # Linux >= 4.20: the socket gets no frames sent out of its interface
AF_BRIDGE = 7
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NDA_LLADDR, NDA_VLAN, NDA_MASTER = 2, 5, 9
NUD_PERMANENT = 0x80
RTNLGRP_NEIGH = 3


# --------------------------------------------------------------------------- frame decoding

def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _vrrp(d: dict, payload: bytes) -> None:
    """Fill VRRP fields from the advertisement bytes (v3 interval centiseconds, v2 seconds -> ms)."""
    if len(payload) < 8:
        d["kind"] = "other"
        return
    ver = payload[0] >> 4
    d.update(kind="vrrp", version=ver, vrrp_type=payload[0] & 0x0F, vrid=payload[1], priority=payload[2],
             count=payload[3])
    if ver == 3:
        d["interval_ms"] = (struct.unpack("!H", payload[4:6])[0] & 0x0FFF) * 10
    else:
        d["interval_ms"] = payload[5] * 1000


def _ipv4(d: dict, pkt: bytes) -> None:
    if len(pkt) < 20:
        return
    ihl = (pkt[0] & 0x0F) * 4
    proto = pkt[9]
    d.update(src_ip=socket.inet_ntoa(pkt[12:16]), dst_ip=socket.inet_ntoa(pkt[16:20]), ttl=pkt[8],
             proto=proto)
    body = pkt[ihl:]
    if proto == 112:
        _vrrp(d, body)
        d["ah"] = False
    elif proto == 51 and len(body) >= 12 and body[0] == 112:
        _vrrp(d, body[(body[1] + 2) * 4:])
        d["ah"] = True


def _ipv6(d: dict, pkt: bytes) -> None:
    if len(pkt) < 40:
        return
    nxt = pkt[6]
    d.update(src_ip=socket.inet_ntop(socket.AF_INET6, pkt[8:24]),
             dst_ip=socket.inet_ntop(socket.AF_INET6, pkt[24:40]), ttl=pkt[7], proto=nxt)
    body = pkt[40:]
    if nxt == 0 and len(body) >= 8:  # hop-by-hop (MLD router alert)
        nxt, body = body[0], body[(body[1] + 1) * 8:]
        d["proto"] = nxt
    if nxt == 112:
        _vrrp(d, body)
        d["ah"] = False
    elif nxt == 58 and len(body) >= 24 and body[0] == 136:
        d.update(kind="na", target=socket.inet_ntop(socket.AF_INET6, body[8:24]),
                 router=bool(body[4] & 0x80), solicited=bool(body[4] & 0x40), override=bool(body[4] & 0x20))
    elif nxt == 58 and body:
        d["icmp6_type"] = body[0]


def decode_frame(frame: bytes) -> dict:
    """Decode an Ethernet frame minimally into the JSON fields described in the module docstring."""
    d: dict = {"dst_mac": _mac(frame[0:6]), "src_mac": _mac(frame[6:12]), "kind": "other"}
    etype, off = struct.unpack("!H", frame[12:14])[0], 14
    if etype == 0x8100 and len(frame) >= 18:
        d["vlan"] = struct.unpack("!H", frame[14:16])[0] & 0x0FFF
        etype, off = struct.unpack("!H", frame[16:18])[0], 18
    d["ethertype"] = etype
    body = frame[off:]
    if etype == 0x0806 and len(body) >= 28:
        sip, tip = socket.inet_ntoa(body[14:18]), socket.inet_ntoa(body[24:28])
        d.update(kind="arp", op=struct.unpack("!H", body[6:8])[0], sender_mac=_mac(body[8:14]), src_ip=sip,
                 dst_ip=tip, gratuitous=sip == tip)
    elif etype == 0x0800:
        _ipv4(d, body)
    elif etype == 0x86DD:
        _ipv6(d, body)
    return d


# --------------------------------------------------------------------------- netlink FDB

def _nl_open() -> socket.socket:
    """Netlink route socket subscribed to neighbour (incl. bridge FDB) events."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    nl.bind((0, 1 << (RTNLGRP_NEIGH - 1)))
    return nl


def _nl_dump_request(nl: socket.socket) -> None:
    """Ask for a dump of the AF_BRIDGE FDB (answers arrive as ``dump`` events)."""
    ndmsg = struct.pack("=BBHiHBB", AF_BRIDGE, 0, 0, 0, 0, 0, 0)
    hdr = struct.pack("=IHHII", 16 + len(ndmsg), RTM_GETNEIGH, 0x301, 1, 0)
    nl.send(hdr + ndmsg)


def _ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"if{index}"


def parse_fdb_messages(buf: bytes, master_index: int | None) -> list[dict]:
    """FDB events from a netlink datagram, keeping entries of bridge ``master_index`` (None: all)."""
    out, off = [], 0
    while off + 16 <= len(buf):
        length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        msg = buf[off + 16: off + length]
        off += (length + 3) & ~3
        if mtype not in (RTM_NEWNEIGH, RTM_DELNEIGH) or len(msg) < 12:
            continue
        family, _p1, _p2, ifindex, state, _fl, _typ = struct.unpack_from("=BBHiHBB", msg)
        if family != AF_BRIDGE:
            continue
        attrs, aoff = {}, 12
        while aoff + 4 <= len(msg):
            alen, atype = struct.unpack_from("=HH", msg, aoff)
            if alen < 4:
                break
            attrs[atype] = msg[aoff + 4: aoff + alen]
            aoff += (alen + 3) & ~3
        master = struct.unpack("=I", attrs[NDA_MASTER])[0] if NDA_MASTER in attrs else None
        if master_index is not None and master not in (None, master_index) and ifindex != master_index:
            continue
        if NDA_LLADDR not in attrs:
            continue
        event = "del" if mtype == RTM_DELNEIGH else ("dump" if seq == 1 else "new")
        out.append({"type": "fdb", "event": event, "mac": _mac(attrs[NDA_LLADDR]), "port": _ifname(ifindex),
                    "vlan": struct.unpack("=H", attrs[NDA_VLAN])[0] if NDA_VLAN in attrs else None,
                    "permanent": bool(state & NUD_PERMANENT)})
    return out


# --------------------------------------------------------------------------- capture process

def _open_packet(ifname: str, rx_only: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    if rx_only:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    return s


def _read_packets(sock: socket.socket, write) -> None:
    """Decode and write every frame queued on an AF_PACKET socket."""
    while True:
        try:
            data, anc, _fl, addr = sock.recvmsg(65535, socket.CMSG_SPACE(16))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # a `crash` sets the bridge port down (ENETDOWN) or it vanishes (ENXIO): the socket
            # stays bound and delivers again if the port comes back, so keep capturing
            if exc.errno in (errno.ENETDOWN, errno.ENXIO):
                return
            raise
        mono, real = time.monotonic_ns(), time.time_ns()
        t_ns, ts = mono, "user"
        for level, ctype, cdata in anc:
            if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("=qq", cdata[:16])
                t_ns, ts = sec * 1_000_000_000 + nsec - (real - mono), "kernel"
        d = {"type": "frame", "t_ns": t_ns, "ts": ts, "ifname": addr[0],
             "dir": "tx" if addr[2] == PACKET_OUTGOING else "rx"}
        d.update(decode_frame(data))
        write(d)


def capture(out_path: str, ifaces: list[str], fdb_bridge: str | None, kinds: set[str] | None,
            rx_only: bool = False) -> None:
    """Run until SIGTERM/SIGINT, writing frame and FDB events as JSON lines to ``out_path``
    (``rx_only``: the kernel hands over no ``tx`` frame, so a flood sent *to* a port costs
    the capture nothing)."""
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("flag", True))
    socks = {_open_packet(i, rx_only): "pkt" for i in ifaces}
    master = None
    if fdb_bridge:
        master = socket.if_nametoindex(fdb_bridge)
        nl = _nl_open()
        socks[nl] = "nl"
    with open(out_path, "w", encoding="utf-8", buffering=1) as fh:
        def write(d: dict) -> None:
            if d["type"] != "frame" or kinds is None or d["kind"] in kinds:
                fh.write(json.dumps(d) + "\n")

        if fdb_bridge:
            _nl_dump_request(nl)
        print("ready", flush=True)
        while not stop["flag"]:
            try:
                readable, _, _ = select.select(list(socks), [], [], 0.2)
            except InterruptedError:
                continue
            for s in readable:
                if socks[s] == "pkt":
                    _read_packets(s, write)
                    continue
                try:
                    data = s.recv(1 << 16)
                except OSError as exc:   # ENOBUFS: netlink overrun, events lost; go on
                    if exc.errno != errno.ENOBUFS:
                        raise
                    continue
                now = time.monotonic_ns()
                for ev in parse_fdb_messages(data, master):
                    write({"t_ns": now, **ev})


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see module docstring)."""
    ap = argparse.ArgumentParser(prog="vmaclab.observe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--iface", action="append", default=[], help="capture on this interface (repeatable)")
    ap.add_argument("--fdb-bridge", default=None, help="watch this bridge's FDB via netlink")
    ap.add_argument("--kinds", default=None, help="comma list of frame kinds to keep (default all)")
    ap.add_argument("--rx-only", action="store_true", help="only frames received on the interfaces")
    args = ap.parse_args(argv)
    capture(args.out, args.iface, args.fdb_bridge, set(args.kinds.split(",")) if args.kinds else None,
            args.rx_only)
    return 0


# --------------------------------------------------------------------------- Python API

def read_events(path: str) -> list[dict]:
    """All JSON lines of an observer file (a torn last line, still being written, is skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class Observer:
    """A running capture process; events are in ``out_path`` (see :func:`read_events`)."""

    def __init__(self, proc: NsProcess, out_path: str) -> None:
        self.proc, self.out_path = proc, out_path

    @classmethod
    def start(cls, ns: str | None, ifaces: list[str], out_path: str, fdb_bridge: str | None = None,
              kinds: list[str] | None = None, rx_only: bool = False) -> Observer:
        """Capture on ``ifaces`` (and watch ``fdb_bridge``'s FDB) in namespace ``ns``; returns when ready."""
        args = ["--out", out_path] + (["--rx-only"] if rx_only else [])
        for i in ifaces:
            args += ["--iface", i]
        if fdb_bridge:
            args += ["--fdb-bridge", fdb_bridge]
        if kinds:
            args += ["--kinds", ",".join(kinds)]
        return cls(NsProcess.start(ns, "vmaclab.observe", args), out_path)

    def events(self) -> list[dict]:
        """Events written so far (the process keeps running)."""
        return read_events(self.out_path)

    def stop(self) -> list[dict]:
        """Stop the process and return every event it wrote."""
        code, _out, err = self.proc.stop()
        if code != 0:
            raise RuntimeError(f"observer exited {code}: {err.strip()}")
        return read_events(self.out_path)


class FdbWatcher(Observer):
    """An :class:`Observer` that only watches a bridge's FDB."""

    @classmethod
    def start(cls, ns: str | None, bridge: str, out_path: str) -> FdbWatcher:  # type: ignore[override]
        """Watch ``bridge``'s FDB in namespace ``ns``; returns when ready (initial dump follows)."""
        return cls(NsProcess.start(ns, "vmaclab.observe", ["--out", out_path, "--fdb-bridge", bridge]),
                   out_path)


# --------------------------------------------------------------------------- analysis helpers

def frames(events: list[dict], kind: str | None = None, direction: str | None = None) -> list[dict]:
    """Frame events, optionally of one ``kind`` and one ``dir`` (``rx``/``tx``), in time order."""
    out = [e for e in events if e.get("type") == "frame" and (kind is None or e["kind"] == kind)
           and (direction is None or e["dir"] == direction)]
    return sorted(out, key=lambda e: e["t_ns"])


def adverts(events: list[dict], vrid: int | None = None, src_ip: str | None = None,
            src_mac: str | None = None, direction: str | None = "rx") -> list[dict]:
    """VRRP advertisements matching the given fields (``rx`` on a bridge port: sent by that node)."""
    return [e for e in frames(events, "vrrp", direction)
            if (vrid is None or e["vrid"] == vrid) and (src_ip is None or e["src_ip"] == src_ip)
            and (src_mac is None or e["src_mac"] == src_mac.lower())]


def last_advert(events: list[dict], before_ns: int | None = None, **match) -> dict | None:
    """Last advertisement (``adverts`` filters) at or before ``before_ns`` (e.g. old master's last)."""
    got = [e for e in adverts(events, **match) if before_ns is None or e["t_ns"] <= before_ns]
    return got[-1] if got else None


def first_advert(events: list[dict], after_ns: int | None = None, **match) -> dict | None:
    """First advertisement (``adverts`` filters) at or after ``after_ns`` (e.g. new master's first)."""
    got = [e for e in adverts(events, **match) if after_ns is None or e["t_ns"] >= after_ns]
    return got[0] if got else None


def gratuitous_arps(events: list[dict], ip: str | None = None, after_ns: int | None = None,
                    direction: str | None = "rx") -> list[dict]:
    """Gratuitous ARPs (sender IP == target IP), optionally for ``ip`` and after ``after_ns``."""
    return [e for e in frames(events, "arp", direction)
            if e["gratuitous"] and (ip is None or e["src_ip"] == ip)
            and (after_ns is None or e["t_ns"] >= after_ns)]


def frames_from_mac(events: list[dict], mac: str, after_ns: int | None = None, ifname: str | None = None,
                    direction: str | None = "rx") -> list[dict]:
    """Frames whose source MAC is ``mac`` after ``after_ns`` (the dead-box-sends-nothing check)."""
    mac = mac.lower()
    return [e for e in frames(events, None, direction) if e["src_mac"] == mac
            and (after_ns is None or e["t_ns"] >= after_ns) and (ifname is None or e["ifname"] == ifname)]


def fdb_events(events: list[dict], mac: str | None = None) -> list[dict]:
    """FDB events (optionally for one MAC), in time order."""
    out = [e for e in events if e.get("type") == "fdb" and (mac is None or e["mac"] == mac.lower())]
    return sorted(out, key=lambda e: e["t_ns"])


def fdb_moves(events: list[dict], mac: str) -> list[dict]:
    """When ``mac`` moved between bridge ports: ``{t_ns, from, to}`` (``from`` None: first learned)."""
    moves, port = [], None
    for e in fdb_events(events, mac):
        if e["event"] == "del":
            continue
        if e["port"] != port:
            moves.append({"t_ns": e["t_ns"], "from": port, "to": e["port"]})
            port = e["port"]
    return moves


def bridge_ports(ns: str | None, bridge: str) -> list[str]:
    """Names of the ports enslaved to ``bridge`` in namespace ``ns``."""
    argv = ["ip", "-j", "link", "show", "master", bridge]
    if ns:
        argv[1:1] = ["-n", ns]
    res = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [link["ifname"] for link in json.loads(res.stdout or "[]")]


def neigh_entry(ns: str | None, ip: str, dev: str | None = None) -> dict | None:
    """The neighbour (ARP/ND) entry for ``ip`` in ``ns``: ``{ip, mac, dev, state}`` or None."""
    argv = ["ip", "-j", "neigh", "show", "to", str(ipaddress.ip_address(ip))]
    if dev:
        argv += ["dev", dev]
    if ns:
        argv[1:1] = ["-n", ns]
    res = subprocess.run(argv, capture_output=True, text=True, check=True)
    for e in json.loads(res.stdout or "[]"):
        if e.get("dst") == ip:
            return {"ip": ip, "mac": e.get("lladdr"), "dev": e.get("dev"), "state": e.get("state", [])}
    return None


def neigh_mac(ns: str | None, ip: str, dev: str | None = None) -> str | None:
    """The MAC the neighbour table of ``ns`` holds for ``ip`` (None if absent or unresolved)."""
    entry = neigh_entry(ns, ip, dev)
    return entry["mac"] if entry else None


if __name__ == "__main__":
    sys.exit(main())
