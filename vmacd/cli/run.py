"""`vmacd run [-c FILE] [--log-format text|json] [--log-level …]`: the daemon, in the foreground.

systemd Type=notify: READY=1 once the instances are built. SIGTERM/SIGINT release mastership
(priority 0, make-before-break) and remove what vmacd created; exit 0. SIGHUP reloads.
Exit 1: the config is invalid, the box cannot run it, or vmacd lacks the privileges it needs
(the reason is logged); 2: unusable call.
"""
from __future__ import annotations

import argparse
import logging
import sys

from vmacd import log as vlog
from vmacd.config import model
from vmacd.config.load import ConfigError, load

HELP = "run the daemon in the foreground (SIGTERM: release mastership and clean up)"
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


def setargs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=model.DEFAULT_PATH, metavar="FILE",
                        help=f"config file (default {model.DEFAULT_PATH})")
    vlog.add_arguments(parser)
    parser.set_defaults(log_format=None, log_level=None)


def missing_capabilities(status: str = "/proc/self/status") -> list[str]:
    """The capabilities vmacd needs and does not have (from CapEff)."""
    try:
        with open(status, encoding="ascii") as fh:
            eff = next(int(line.split()[1], 16) for line in fh if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return []                      # cannot tell: let the first socket say it
    return [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_NET_RAW, "CAP_NET_RAW"))
            if not eff >> bit & 1]


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
    vlog.setup(args.log_format or g.log_format, args.log_level or g.log_level, node=g.node)
    log = logging.getLogger("vmacd")
    for flag, value, key in ((args.log_format, g.log_format, "log_format"),
                             (args.log_level, g.log_level, "log_level")):
        if flag is not None and flag != value:
            log.info("--%s %s overrides %s = %s of %s", key.replace("_", "-"), flag, key, value,
                     args.config)
    missing = missing_capabilities()
    if missing:
        log.error("vmacd run needs root or the capabilities CAP_NET_ADMIN and CAP_NET_RAW "
                  "(netlink, raw IP and packet sockets); missing: %s", ", ".join(missing))
        return 1
    from vmacd.control.metrics import Metrics
    from vmacd.daemon import Daemon

    metrics = Metrics(node=g.node)
    try:
        return Daemon(config, args.config, metrics).run()
    except PermissionError as exc:
        log.error("not permitted: %s (vmacd needs root or CAP_NET_ADMIN + CAP_NET_RAW)", exc)
        return 1
