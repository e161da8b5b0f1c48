"""The standard `process_*` series, read from /proc/self when scraped.

Names and meanings follow the Prometheus client libraries, so dashboards and alerts written for
any exporter work: CPU time (user + system), resident and virtual memory, start time (Unix
seconds), open file descriptors and their soft limit.
"""
from __future__ import annotations

import os

from vmacd.control.exposition import Family, sample

FAMILIES = (
    Family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."),
    Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
    Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    Family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
    Family("process_open_fds", "gauge", "Number of open file descriptors."),
    Family("process_max_fds", "gauge", "Maximum number of open file descriptors."),
)

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time(proc: str) -> float:
    with open(f"{proc}/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError(f"{proc}/stat: no btime line")


class ProcessStats:
    """Reads the process series of this process (or of `pid`, for tests) on each `render()`."""

    def __init__(self, pid: int | str = "self", proc: str = "/proc") -> None:
        self.dir = f"{proc}/{pid}"
        self._boot = _boot_time(proc)

    def values(self) -> list[float]:
        """The six values, in FAMILIES order."""
        with open(f"{self.dir}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        rest = stat[stat.rindex(")") + 2:].split()
        utime, stime, start, vsize, rss = (int(rest[i]) for i in (11, 12, 19, 20, 21))
        return [
            (utime + stime) / _TICKS,
            rss * _PAGE,
            vsize,
            self._boot + start / _TICKS,
            len(os.listdir(f"{self.dir}/fd")),
            self._max_fds(),
        ]

    def _max_fds(self) -> float:
        with open(f"{self.dir}/limits", encoding="ascii") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return float("inf") if soft == "unlimited" else int(soft)
        raise OSError(f"{self.dir}/limits: no 'Max open files' line")

    def render(self) -> str:
        """HELP, TYPE and sample of every process series; "" when /proc cannot be read."""
        try:
            vals = self.values()
        except (OSError, ValueError, IndexError):
            return ""
        return "".join(fam.header() + sample(fam.name, "", v) for fam, v in zip(FAMILIES, vals, strict=True))
