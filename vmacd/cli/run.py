"""`vmacd run [-c FILE] [--log-format text|json] [--log-level …]`: the daemon, in the foreground.

systemd Type=notify: READY=1 once the sockets are up. SIGTERM/SIGINT release mastership
(priority 0, make-before-break) and remove what vmacd created; exit 0. SIGHUP reloads.
Exit 1: the config is invalid or the box cannot run it (the reason is logged); 2: unusable call.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from vmacd import log as vlog
from vmacd.config import model
from vmacd.config.load import ConfigError, load

HELP = "run the daemon in the foreground (SIGTERM: release mastership and clean up)"


def setargs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=model.DEFAULT_PATH, metavar="FILE",
                        help=f"config file (default {model.DEFAULT_PATH})")
    vlog.add_arguments(parser)
    parser.set_defaults(log_format=None, log_level=None)


def cmdline(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vmacd run: cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    g = config.global_
    vlog.setup(args.log_format or g.log_format, args.log_level or g.log_level)
    from vmacd.daemon import Daemon

    try:
        return asyncio.run(Daemon(config, args.config).run())
    except PermissionError as exc:
        logging.getLogger("vmacd").error("not permitted: %s (vmacd needs root or "
                                         "CAP_NET_ADMIN + CAP_NET_RAW)", exc)
        return 1
