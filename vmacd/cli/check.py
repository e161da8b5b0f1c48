"""`vmacd check [-c FILE] [--no-preflight]`: validate a config and check this box for it.

Exit 0: valid (warnings may be printed); 1: invalid config or a preflight error; 2: unusable call
(the file is missing or unreadable). Problems go to stderr one per line as `FILE: key.path: message`
(preflight findings add `error:` / `warning:`); a short summary of a good config goes to stdout.

Everything is reported in one run: a key file that cannot be read or is world-readable, or an
inline key in a world-readable config, is an error that does not stop the other checks. With
`--no-preflight` nothing about this box is looked at (interfaces, commands, services, key files):
the config is meant for another box, where `vmacd check` without it must be run.
"""
from __future__ import annotations

import argparse
import sys

from vmacd.config import durations, model
from vmacd.config.load import ConfigError, ConfigIssue, load
from vmacd.linux.preflight import ERROR, Finding, advice, preflight

HELP = "validate a config file and check this box for it (exit 0 ok, 1 invalid, 2 unusable)"


def setargs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=model.DEFAULT_PATH, metavar="FILE",
                        help=f"config file (default {model.DEFAULT_PATH})")
    parser.add_argument("--no-preflight", action="store_true",
                        help="validate the file only: no interface, sysctl, socket or key-file checks "
                             "(for a config meant for another box)")


def cmdline(args: argparse.Namespace) -> int:
    path = args.config
    file_issues: list[ConfigIssue] = []
    try:
        config = load(path, read_files=not args.no_preflight, file_issues=file_issues)
    except ConfigError as exc:
        for issue in [*exc.errors, *file_issues]:
            print(issue, file=sys.stderr)
        print(f"{path}: invalid: {len(exc.errors) + len(file_issues)} error(s)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vmacd check: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    findings = [Finding(ERROR, i.path, i.message) for i in file_issues]
    findings += advice(config) if args.no_preflight else preflight(config)
    for finding in findings:
        print(finding.render(path), file=sys.stderr)
    errors = sum(1 for f in findings if f.severity == ERROR)
    if errors:
        label = "check failed" if args.no_preflight else "preflight failed"
        print(f"{path}: {label}: {errors} error(s)", file=sys.stderr)
        return 1
    print(summary(config, len(findings), preflight_done=not args.no_preflight))
    return 0


def summary(config: model.Config, warnings: int, preflight_done: bool) -> str:
    """A few lines: what the config runs, one line per instance."""
    n = len(config.instances)
    head = f"{config.source}: ok: node {config.global_.node}, {n} instance{'s' if n != 1 else ''}"
    if config.sync_groups:
        head += f", {len(config.sync_groups)} sync group(s)"
    head += f", {warnings} warning(s)" if preflight_done else " (preflight skipped)"
    lines = [head]
    for inst in config.instances:
        vips = " ".join(str(v) for v in inst.virtual_ips)
        mode = f"vmac {inst.vmac_mode}" if inst.vmac else "no vmac"
        auth = inst.auth.type if inst.auth else "none"
        lines.append(f"  {inst.name}: {inst.interface} vrid {inst.vrid} VRRPv{inst.version} "
                     f"IPv{inst.family} priority {inst.priority} "
                     f"advert {durations.format_us(inst.advert_interval_cs * 10_000)} "
                     f"{mode} auth {auth} vips {vips}")
    return "\n".join(lines)
