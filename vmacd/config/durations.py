"""Durations in the config are strings with units: "10ms", "1.5s", "2m", "1h", or sums like "1m30s".

Parsing is exact (decimal, not float), so "40.95s" is exactly 4095 centiseconds and a value that
is not a whole number of centiseconds can be refused instead of rounded.
"""
from __future__ import annotations

import re
from decimal import Decimal, Inexact, InvalidOperation, localcontext

_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class DurationError(ValueError):
    """The text is not a duration; the message says what a duration looks like."""


def parse_us(text: object) -> int:
    """Parse a duration string into whole microseconds. Fractions below 1 µs are refused."""
    if not isinstance(text, str):
        raise DurationError('must be a string with a unit such as "100ms" or "1.5s"')
    s = text.strip()
    if not s:
        raise DurationError('must not be empty; use e.g. "0s"')
    pos, total = 0, Decimal(0)
    with localcontext() as ctx:
        # exact: enough digits for every digit of the text times 3.6e9 (the default context
        # keeps 28 and would round "1.00000000000000000000000000001s" to 1 s)
        ctx.prec = len(s) + 16
        ctx.traps[Inexact] = True
        while pos < len(s):
            m = _PART.match(s, pos)
            if m is None:
                raise DurationError('must be a number with a unit ms, s, m or h, e.g. "100ms" or "1.5s"')
            try:
                total += Decimal(m.group(1)) * _UNIT_US[m.group(2)]
            except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
                raise DurationError(str(exc)) from exc
            pos = m.end()
    if total != total.to_integral_value():
        raise DurationError("must be a whole number of microseconds")
    return int(total)


def parse_seconds(text: object) -> float:
    """Parse a duration string into seconds (float)."""
    return parse_us(text) / 1_000_000


def format_us(us: int) -> str:
    """Render microseconds back as the shortest exact duration string ("100ms", "1.5s", "2m")."""
    if us == 0:
        return "0s"
    for unit in ("h", "m"):
        if us % _UNIT_US[unit] == 0:
            return f"{us // _UNIT_US[unit]}{unit}"
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1_000 == 0:
        ms = us // 1_000
        return f"{ms}ms" if ms < 1_000 else f"{Decimal(ms) / 1000}s"
    return f"{Decimal(us) / 1_000_000}s"
