"""`vmacd cleanup [-c FILE] [-s SOCKET]`: remove what a dead vmacd left on this box (systemd
ExecStopPost).

Deletes every macvlan vmacd made (alias `vmacd:<instance>`), removes every address vmacd added
(IFA_PROTO mark, vmac = false mode) and the nftables tables (`inet vmacd`, and the address
owner's `arp vmacd_owner` / `ip6 vmacd_owner`). It refuses to run while
a daemon answers on the control socket: cleaning under a live daemon would drop its VIPs.
Exit 0 when the box is clean, 1 when something could not be removed, 2 unusable call.
"""
from __future__ import annotations

import argparse
import sys

from vmacd.config import model

HELP = "remove the vMACs, VIPs and nftables rules a dead vmacd left behind (not while one runs)"


def setargs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="the daemon's config file: its control_socket is asked (like run/check)")
    parser.add_argument("-s", "--socket", default=None,
                        help=f"control socket of a running daemon (default {model.DEFAULT_CONTROL_SOCKET})")


def _socket_path(args: argparse.Namespace) -> str | None:
    """The control socket to probe: -s, else the config's control_socket, else the default."""
    given: str | None = args.socket
    if given:
        return given
    if args.config:
        from vmacd.config.load import ConfigError, load
        try:
            return load(args.config, read_files=False).global_.control_socket
        except (ConfigError, OSError) as exc:
            detail = "; ".join(map(str, exc.errors)) if isinstance(exc, ConfigError) else exc
            print(f"vmacd cleanup: cannot read {args.config}: {detail}", file=sys.stderr)
            return None
    return model.DEFAULT_CONTROL_SOCKET


def cmdline(args: argparse.Namespace) -> int:
    from vmacd.cli.ctl import Unreachable, request

    args.socket = _socket_path(args)
    if args.socket is None:
        return 2

    try:
        request(args.socket, {"cmd": "status"}, timeout=2.0)
    except (Unreachable, OSError, ValueError):
        pass
    else:
        print(f"vmacd cleanup: a vmacd answers on {args.socket}; stop it first", file=sys.stderr)
        return 2
    from vmacd.linux.links import LinkError, Links
    from vmacd.linux.nft import AcceptModeFilter, NftError, OwnerFilter

    failed = 0
    vm = Links()
    try:
        for left in vm.adopt_or_clean(keep=frozenset()):
            print(f"{left.action} {left.kind} {left.ifname} {left.address}".rstrip())
    except LinkError as exc:
        print(f"vmacd cleanup: {exc}", file=sys.stderr)
        failed += 1
    finally:
        vm.close()
    for table in (AcceptModeFilter(), OwnerFilter()):
        try:
            table.close()
        except NftError as exc:
            print(f"vmacd cleanup: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
