"""Prometheus text exposition format 0.0.4: escaping, numbers, family headers, histograms.

The format, line by line:

    # HELP vmacd_adverts_sent_total Advertisements sent
    # TYPE vmacd_adverts_sent_total counter
    vmacd_adverts_sent_total{vrrp_instance="lan",vrid="51",interface="eth1"} 12

All samples of one family follow its HELP and TYPE lines, as one group. Label values escape `\\`,
`"` and newline; HELP text escapes `\\` and newline. Values are Go-style floats: `+Inf`, `-Inf`,
`NaN`, otherwise any decimal or exponent form. A histogram `x` has cumulative `x_bucket{le=...}`
series ending with `le="+Inf"`, then `x_sum` and `x_count` (equal to the `+Inf` bucket).

Only the standard library; nothing here imports more than `math`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Family(NamedTuple):
    """A metric family: its name (counters end in `_total`), type and HELP text."""

    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.type}\n"


def escape_label(value: str) -> str:
    """A label value as it goes between the double quotes."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def labels(pairs: Sequence[tuple[str, str]]) -> str:
    """`a="x",b="y"` (no braces): the inside of a label set, values escaped."""
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)


def number(v: float) -> str:
    """A sample value: ints as they are, floats in Python's shortest round-trip form."""
    if type(v) is int:
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def bound(b: float) -> str:
    """A bucket bound for the `le` label."""
    return "+Inf" if math.isinf(b) else repr(float(b))


def sample(name: str, lbl: str, value: float) -> str:
    """One sample line; `lbl` is the inside of the label set ("" for none)."""
    return f"{name}{{{lbl}}} {number(value)}\n" if lbl else f"{name} {number(value)}\n"


class HistogramShape:
    """The bucket bounds of one histogram family, with the text that repeats on every render."""

    def __init__(self, name: str, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds or math.isinf(bounds[-1]):
            raise ValueError(f"{name}: bucket bounds must be finite, distinct and increasing")
        self.name = name
        self.bounds = tuple(float(b) for b in bounds)
        self._le = [bound(b) for b in self.bounds] + ["+Inf"]

    def new_counts(self) -> list[int]:
        """Per-bucket (not cumulative) observation counts; the last one is the +Inf bucket."""
        return [0] * (len(self.bounds) + 1)

    def lines(self, lbl: str, counts: Sequence[int], total: float) -> str:
        """`_bucket` (cumulative), `_sum` and `_count` lines for one label set."""
        sep = "," if lbl else ""
        name = self.name
        out = []
        cum = 0
        for le, n in zip(self._le, counts, strict=True):
            cum += n
            out.append(f'{name}_bucket{{{lbl}{sep}le="{le}"}} {cum}\n')
        out.append(sample(f"{name}_sum", lbl, total))
        out.append(sample(f"{name}_count", lbl, cum))
        return "".join(out)
