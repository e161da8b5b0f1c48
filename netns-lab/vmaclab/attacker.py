"""Hostile or broken VRRP peer: scapy advertisements with chosen fields, once or N per second.

Runs inside an attacker node: ``python -m vmaclab.attacker --iface eth0 --vrid 51 ...`` prints one
JSON line ``{"sent": N, "seconds": T}``. ``send(lab, node, lan, ...)`` wraps that from the lab side.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import Lab

MAX_SECONDS = 60.0


def build(args: argparse.Namespace):
    """Build the Ethernet frame of one advertisement from the parsed options."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRP, VRRPv3
    v6 = ":" in (args.address[0] if args.address else args.src)
    if args.version == 3:
        vr = VRRPv3(vrid=args.vrid, priority=args.priority, ipcount=len(args.address),
                    adv=args.interval_cs, addrlist=args.address)
    else:
        vr = VRRP(vrid=args.vrid, priority=args.priority, ipcount=len(args.address),
                  adv=max(1, args.interval_cs // 100), addrlist=args.address)
    if args.type is not None:
        vr.type = args.type
    if args.checksum is not None:
        vr.chksum = args.checksum
    if v6:
        ip = IPv6(src=args.src, dst="ff02::12", hlim=args.ttl, nh=112)
        dst = "33:33:00:00:00:12"
    else:
        ip = IP(src=args.src, dst="224.0.0.18", ttl=args.ttl, proto=112)
        dst = "01:00:5e:00:00:12"
    eth = Ether(src=args.mac or f"00:00:5e:00:0{2 if v6 else 1}:{args.vrid:02x}", dst=dst)
    return eth / ip / vr


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the attacker process."""
    ap = argparse.ArgumentParser(prog="vmaclab.attacker", description=__doc__)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src", required=True, help="IP source address of the advertisement")
    ap.add_argument("--mac", help="Ethernet source (default: the vMAC of --vrid)")
    ap.add_argument("--vrid", type=int, default=51)
    ap.add_argument("--spread", type=int, default=1,
                    help="rotate over this many VRIDs from --vrid on (each with its own vMAC)")
    ap.add_argument("--priority", type=int, default=255)
    ap.add_argument("--version", type=int, choices=(2, 3), default=3)
    ap.add_argument("--interval-cs", type=int, default=10, help="advert interval field, centiseconds")
    ap.add_argument("--address", action="append", default=[], help="virtual IP (repeatable)")
    ap.add_argument("--ttl", type=int, default=255)
    ap.add_argument("--type", type=int, default=None, help="VRRP type field (default 1)")
    ap.add_argument("--checksum", type=lambda s: int(s, 0), default=None, help="force checksum")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0, help="packets per second (0: back to back)")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds; bounds --count")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Send the advertisements; bounded by --count and --duration (never beyond 60 s)."""
    args = parse(argv)
    if not 1 <= args.spread <= 256 - args.vrid:
        raise SystemExit(f"--spread must be 1..{256 - args.vrid} for --vrid {args.vrid}, got {args.spread}")
    from scapy.config import conf
    frames = [bytes(build(argparse.Namespace(**{**vars(args), "vrid": v})))
              for v in range(args.vrid, args.vrid + args.spread)]
    sock = conf.L2socket(iface=args.iface)
    limit = min(args.duration or MAX_SECONDS, MAX_SECONDS)
    count = args.count if not args.duration else sys.maxsize
    start = time.monotonic()
    sent = 0
    try:
        while sent < count and time.monotonic() - start < limit:
            sock.send(frames[sent % len(frames)])
            sent += 1
            if args.rate > 0:
                delay = start + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        sock.close()
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3)}))
    return 0


def send(lab: Lab, node: str, lan: str, vrid: int, priority: int = 255, version: int = 3,
         interval_cs: int = 10, addresses: Sequence[str] | None = None, count: int = 1,
         rate: float = 0.0, duration: float = 0.0, **fields: object) -> dict:
    """Run the attacker on *node* (blocking) and return its summary ``{"sent", "seconds"}``.

    *fields* map to options: src, mac, ttl, type, checksum, spread (e.g. ``ttl=64`` for an invalid
    TTL; ``spread=200``: VRIDs vrid..vrid+199 in rotation).
    """
    fam = 6 if addresses and ":" in addresses[0] else 4
    argv = [sys.executable, "-m", "vmaclab.attacker", "--iface", lab.ifname(node, lan),
            "--src", str(fields.pop("src", lab.addr(node, lan, fam))), "--vrid", str(vrid),
            "--priority", str(priority), "--version", str(version), "--interval-cs", str(interval_cs),
            "--count", str(count), "--rate", str(rate), "--duration", str(duration)]
    for a in addresses if addresses is not None else [lab.vip(lan, fam)]:
        argv += ["--address", a]
    for key, val in fields.items():
        argv += [f"--{key.replace('_', '-')}", str(val)]
    cp = lab.run(node, argv, timeout=min(duration or MAX_SECONDS, MAX_SECONDS) + 30)
    return json.loads(cp.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
