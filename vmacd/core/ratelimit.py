"""Per-kind log rate limiting for the pure core (time is an argument, seconds)."""
from __future__ import annotations


class RateLimiter:
    """At most one line per `kind` per `window` seconds; counts what it swallowed.

    `allow(kind, now)` returns None when the line must be suppressed, else the number of lines of
    that kind suppressed since the last allowed one (to append as "(N more suppressed)").
    """

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError(f"rate-limit window must be > 0 s, got {window}")
        self.window = window
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str, now: float) -> int | None:
        last = self._last.get(kind)
        if last is not None and now - last < self.window:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)
