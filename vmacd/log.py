"""Logging setup (`--log-format text|json`, `--log-level`).

Structured fields travel in `extra=`: `log.info("%s -> %s", a, b, extra={"instance": "lan",
"from": a, "to": b, "reason": r})`. The JSON format writes one object per line with `ts` (UTC,
RFC 3339, ms), `level`, `logger`, `msg` and every extra field; the text format appends them as
`key=value`. Packet-path lines are rate-limited where they arise: the state machine's `Log`
actions already carry the count of lines suppressed before them (`vmacd/core/ratelimit.py`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

# attributes every LogRecord has; anything else came from extra=
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in insertion order."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _iso_utc(t: float) -> str:
    """ISO 8601 in UTC with milliseconds, as datetime.isoformat(timespec="milliseconds") writes
    it (without importing datetime into the daemon)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields (and exc on errors)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,123 INFO vmacd.fsm: lan backup -> master instance=lan reason=...`."""

    def __init__(self, timestamps: bool = True) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        if timestamps:
            fmt = "%(asctime)s " + fmt
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = extra_fields(record)
        if extra:
            pairs = " ".join(f"{k}={_text_value(v)}" for k, v in extra.items())
            head, sep, tail = text.partition("\n")  # keep a traceback below the fields
            text = f"{head} {pairs}{sep}{tail}"
        return text


def _text_value(value: Any) -> str:
    s = str(value)
    return json.dumps(s) if (not s or any(c in s for c in " \"=\n")) else s


def parse_level(level: str | int) -> int:
    """`info` / `INFO` / 20 -> logging.INFO. Raises ValueError naming the choices."""
    if isinstance(level, int):
        return level
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    return logging.getLevelNamesMapping()[level.upper()]


class _NodeField(logging.Filter):
    """Puts the node name (global.node) on every record: fleets read logs of many routers."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def setup(fmt: str = "text", level: str | int = "info", stream: TextIO | None = None,
          timestamps: bool | None = None, node: str | None = None) -> logging.Handler:
    """Configure the root logger with one handler; returns it. Replaces earlier setup() handlers.

    `timestamps=None` leaves them out of the text format under systemd (journald stamps lines).
    `node`: the field `node=...` on every line.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        if timestamps is None:
            timestamps = "JOURNAL_STREAM" not in os.environ
        handler.setFormatter(TextFormatter(timestamps))
    # a marker on the handler object: a later setup() finds and replaces its own handler by it
    handler._vmacd = True  # type: ignore[attr-defined]
    if node is not None:
        handler.addFilter(_NodeField(node))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_vmacd", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    return handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--log-format` and `--log-level` to a subcommand parser."""
    parser.add_argument("--log-format", choices=FORMATS, default="text",
                        help="log line format (default text)")
    parser.add_argument("--log-level", choices=LEVELS, default="info", type=str.lower,
                        help="minimum level logged (default info)")

