"""`vmacd import heartbeat DIR` and `vmacd import keepalived FILE`: translate to vmacd TOML
(docs/config.md, Importing).

The TOML goes to stdout; every line that was not (or not exactly) translated goes to stderr as
`note: ...`. The output is validated with the config loader before it is printed (key files are not
read). Exit 0: translated and valid; 1: the result is not a valid config (errors on stderr, the TOML
is still printed for editing); 2: unusable call (missing or unreadable input).
"""
from __future__ import annotations

import argparse
import os
import sys

from vmacd.config import emit
from vmacd.config.import_heartbeat import Imported, import_heartbeat, read_dir
from vmacd.config.import_keepalived import import_keepalived
from vmacd.config.load import ConfigError, load_text

HELP = "translate a Heartbeat directory or a keepalived.conf to vmacd TOML on stdout"


def setargs(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", required=True)
    hb = sub.add_parser("heartbeat", help="ha.cf + authkeys + haresources in DIR")
    hb.add_argument("directory", metavar="DIR", help="Heartbeat config directory (e.g. /etc/ha.d)")
    hb.add_argument("--node", help="the node this config is for (default: the first 'node' in ha.cf)")
    ka = sub.add_parser("keepalived", help="vrrp_instance / vrrp_script / vrrp_sync_group of FILE")
    ka.add_argument("file", metavar="FILE", help="keepalived.conf")


def cmdline(args: argparse.Namespace) -> int:
    try:
        if args.source == "heartbeat":
            result = import_heartbeat(*read_dir(args.directory), node=args.node)
            origin = f"Heartbeat {os.path.abspath(args.directory)}"
        else:
            with open(args.file, encoding="utf-8") as fh:
                result = import_keepalived(fh.read())
            origin = f"keepalived {os.path.abspath(args.file)}"
    except (OSError, UnicodeDecodeError) as exc:
        name = getattr(exc, "filename", None) or getattr(args, "file", None) or args.directory
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"vmacd import: cannot read {name}: {reason}", file=sys.stderr)
        return 2
    return emit_result(result, origin)


def emit_result(result: Imported, origin: str) -> int:
    text = emit.dumps(result.doc, header=[f"vmacd config translated from {origin}",
                                          "review it, then: vmacd check -c FILE"])
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(text)
    try:
        load_text(text, "<import>", read_files=False)
    except ConfigError as exc:
        for issue in exc.errors:
            print(f"error: {issue}", file=sys.stderr)
        return 1
    return 0
