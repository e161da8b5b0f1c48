"""The failover bound the netns and interop tests assert, from the backup's own timers.

A backup takes over at most one Master_Down_Interval (RFC 9568 §6.1, computed by
`vmacd.core.timers`) after the master's last advertisement. The bound allows half of that again
plus a fixed slack for fault injection, the state poll and a loaded 2-core box: at 100 ms adverts
and priority 100 it is 0.69 s, so a detection twice as slow as the RFC's fails.
"""
from __future__ import annotations

from vmacd.core import timers

SLACK_S = 0.15


def failover_bound_s(priority: int, advert_ms: int = 100, version: int = 3) -> float:
    """1.5 x Master_Down_Interval of a backup of *priority* at *advert_ms* + SLACK_S, seconds."""
    if advert_ms % 10:
        raise ValueError(f"advert_ms must be whole centiseconds, got {advert_ms}")
    mdi = timers.master_down_interval_cs(priority, advert_ms // 10, version)
    return 1.5 * timers.seconds(mdi) + SLACK_S
