"""`vmacd import heartbeat DIR` and `vmacd import keepalived FILE`: translate to vmacd TOML
(docs/config.md, Importing).

The TOML goes to stdout, or with `-o FILE` to FILE (mode 0600), an inline key then to a key file
beside it (0600) and generated notify scripts too; every line that was not (or not exactly)
translated goes to stderr as `note: ...`. The output is validated with the config loader (key
files are not read). Exit 0: translated and valid; 1: nothing could be translated (nothing is
written), or the result is not a valid config (errors on stderr, the TOML is still written for
editing); 2: unusable call (missing or unreadable input, --node not in ha.cf, -o not writable).

The heartbeat importer looks at this box (read-only): which interface's subnet holds each VIP and
which services exist. `--offline` does not, for a config written for another machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from vmacd.config import emit
from vmacd.config.import_heartbeat import DEFAULT_DIR, import_heartbeat, read_dir
from vmacd.config.import_keepalived import import_keepalived
from vmacd.config.importing import Box, GeneratedFile, Imported, OfflineBox, Unusable
from vmacd.config.load import ConfigError, load_text

HELP = "translate a Heartbeat directory or a keepalived.conf to vmacd TOML"


def setargs(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", required=True)
    hb = sub.add_parser("heartbeat", help="ha.cf + authkeys + haresources in DIR")
    hb.add_argument("directory", metavar="DIR", help="Heartbeat config directory (e.g. /etc/ha.d)")
    hb.add_argument("--node", help="the node this config is for, a 'node' of ha.cf (default: this "
                                   "box's hostname if ha.cf lists it, else the first node)")
    hb.add_argument("--offline", action="store_true",
                    help="do not look at this box (interfaces, services): for another machine; "
                         "the interface is then a placeholder to replace")
    ka = sub.add_parser("keepalived", help="vrrp_instance / vrrp_script / vrrp_sync_group of FILE")
    ka.add_argument("file", metavar="FILE", help="keepalived.conf")
    for p in (hb, ka):
        p.add_argument("-o", "--output", metavar="FILE",
                       help="write the TOML to FILE (mode 0600) and keys/scripts beside it, "
                            "instead of stdout")


def _box(args: argparse.Namespace) -> Box:
    if args.offline:
        return OfflineBox()
    from vmacd.linux.discover import (
        LocalBox,  # the only place the importer reads the box
    )
    return LocalBox()


def cmdline(args: argparse.Namespace) -> int:
    out = os.path.abspath(args.output) if args.output else None
    files_dir = os.path.dirname(out) if out else DEFAULT_DIR
    try:
        if args.source == "heartbeat":
            result = import_heartbeat(*read_dir(args.directory), node=args.node, box=_box(args),
                                      files_dir=files_dir)
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
    except Unusable as exc:
        print(f"vmacd import: {exc}", file=sys.stderr)
        return 2
    return emit_result(result, origin, out)


def emit_result(result: Imported, origin: str, out: str | None = None) -> int:
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if not result.doc.get("instance"):
        what = "haresources line with an IP address" if origin.startswith("Heartbeat") else \
            "vrrp_instance"
        print(f"vmacd import: nothing to translate from {origin}: no {what} could be translated "
              "(the notes say why); no config written", file=sys.stderr)
        return 1
    files = list(result.files)
    if out:
        files += _key_files(result.doc, os.path.dirname(out))
    header = [f"vmacd config translated from {origin}", "review it, then: vmacd check -c FILE"]
    header += [f"before use, replace {item}" for item in result.todo]
    text = emit.dumps(result.doc, header=header)
    try:
        load_text(text, out or "<import>", read_files=False)
        errors: list[Any] = []
    except ConfigError as exc:
        errors = exc.errors
    if out:
        try:
            for f in files:
                _write(f.path, f.content, f.mode)
            _write(out, text, 0o600)
        except OSError as exc:
            print(f"vmacd import: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 2
        for f in [*files, GeneratedFile(out, text, 0o600, "config")]:
            print(f"note: wrote {f.path} (mode {f.mode:04o}): {f.purpose}", file=sys.stderr)
    else:
        _stdout_notes(result.doc, files)
        sys.stdout.write(text)
    for issue in errors:
        print(f"error: {issue}", file=sys.stderr)
    return 1 if errors else 0


def _key_files(doc: dict[str, Any], directory: str) -> list[GeneratedFile]:
    """Inline keys -> key files beside the config (the TOML then names them)."""
    files = []
    for name, table in doc.get("auth", {}).items():
        if "key" in table:
            path = os.path.join(directory, f"{name}.key")
            files.append(GeneratedFile(path, table.pop("key") + "\n", 0o600, f"key of [auth.{name}]"))
            table["key_file"] = path
    return files


def _stdout_notes(doc: dict[str, Any], files: list[GeneratedFile]) -> None:
    if any("key" in t for t in doc.get("auth", {}).values()):
        print("note: the key is inline: save the config with mode 0600 (vmacd refuses an inline key "
              "in a world-readable file), or use -o FILE, which puts it in a key file",
              file=sys.stderr)
    for f in files:
        print(f"note: create {f.path} (chmod {f.mode:o}), the {f.purpose}, with:\n{f.content}"
              "(or use -o FILE, which writes it)", file=sys.stderr)


def _write(path: str, content: str, mode: int) -> None:
    """Write atomically with `mode`, whatever the umask: a temporary file renamed over `path`."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".vmacd-import-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
