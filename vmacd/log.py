"""Logging setup (`--log-format text|json`, `--log-level`) and a rate-limited logger.

Structured fields travel in `extra=`: `log.info("%s -> %s", a, b, extra={"instance": "lan",
"from": a, "to": b, "reason": r})`. The JSON format writes one object per line with `ts` (UTC,
RFC 3339, ms), `level`, `logger`, `msg` and every extra field; the text format appends them as
`key=value`. Packet-path warnings go through `RateLimited`, which counts what it suppresses and
reports the count with the next line it lets through (or on `flush()`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

# attributes every LogRecord has; anything else came from extra=
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in insertion order."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields (and exc on errors)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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


def setup(fmt: str = "text", level: str | int = "info", stream: TextIO | None = None,
          timestamps: bool | None = None) -> logging.Handler:
    """Configure the root logger with one handler; returns it. Replaces earlier setup() handlers.

    `timestamps=None` leaves them out of the text format under systemd (journald stamps lines).
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
    handler._vmacd = True  # type: ignore[attr-defined]
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


class RateLimited:
    """At most `burst` lines per key, refilled at `burst / per_seconds` lines per second.

    `rl.warning("dropped %s from %s", reason, src, key=reason, extra={...})`. Suppressed lines are
    counted per key; the next line let through for that key says how many were suppressed
    (text suffix and the extra field `suppressed`). `flush()` reports keys still holding a count.
    """

    def __init__(self, logger: logging.Logger, per_seconds: float, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_seconds <= 0 or burst < 1:
            raise ValueError("RateLimited needs per_seconds > 0 and burst >= 1")
        self.logger = logger
        self.per_seconds = per_seconds
        self.burst = burst
        self._clock = clock
        self._rate = burst / per_seconds
        self._buckets: dict[object, tuple[float, float]] = {}   # key -> (tokens, last time)
        self._suppressed: dict[object, int] = {}
        self.total_suppressed = 0

    def log(self, level: int, msg: str, *args: Any, key: object = None,
            extra: dict[str, Any] | None = None) -> bool:
        """Log unless over the limit; returns whether the line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        key = msg if key is None else key
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            self.total_suppressed += 1
            return False
        self._buckets[key] = (tokens - 1.0, now)
        extra = dict(extra or {})
        n = self._suppressed.pop(key, 0)
        if n:
            msg = f"{msg} ({n} similar line{'s' if n != 1 else ''} suppressed)"
            extra["suppressed"] = n
        self.logger.log(level, msg, *args, extra=extra or None)
        return True

    def debug(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.INFO, msg, *args, **kw)

    def warning(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.WARNING, msg, *args, **kw)

    def error(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.ERROR, msg, *args, **kw)

    def flush(self) -> int:
        """Log one summary line per key with suppressed lines; returns how many were pending."""
        pending = sum(self._suppressed.values())
        for key, n in self._suppressed.items():
            self.logger.warning("%d similar line%s suppressed: %s", n, "s" if n != 1 else "", key,
                                extra={"suppressed": n})
        self._suppressed.clear()
        return pending
