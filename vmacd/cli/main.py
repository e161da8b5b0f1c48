"""`vmacd` entry point: one subcommand per module, each with setargs(parser) and cmdline(args).

Exit codes (docs/operations.md): 0 ok, 1 invalid input / refused, 2 unusable call.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

# subcommand -> module under vmacd.cli; each module defines HELP, setargs(parser), cmdline(args) -> int
COMMANDS = {
    "run": "vmacd.cli.run",
    "check": "vmacd.cli.check",
    "decode": "vmacd.cli.decode",
    "import": "vmacd.cli.importers",
    "cleanup": "vmacd.cli.cleanup",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 already; keep the message short
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `only` just that subcommand: `vmacd run` then does not
    carry the importers, the decoder and the checker in its memory for as long as it runs."""
    parser = _Parser(prog="vmacd", description="VRRP virtual-MAC failover daemon")
    from vmacd import __version__

    parser.add_argument("--version", action="version", version=f"vmacd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.setargs(p)
        p.set_defaults(_cmdline=mod.cmdline)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = argv[0] if argv else None
    args = build_parser(first if first in COMMANDS else None).parse_args(argv)
    try:
        return int(args._cmdline(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
