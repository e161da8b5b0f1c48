"""VRRP timer arithmetic (RFC 9568 §6.1 for v3, RFC 3768 §6.1 for v2). Pure: no clock here.

Units and rounding (pinned; RFC 9568 leaves the rounding of Skew_Time open):

* every duration is an exact rational number of **centiseconds** (`fractions.Fraction`);
  nothing is rounded or truncated. Priority 100 at 100 cs gives Skew_Time = 15600/256 =
  60.9375 cs (the RFC's "60.94") and Master_Down_Interval = 360.9375 cs.
* a duration becomes float **seconds** only when a deadline is armed: `deadline = now +
  seconds(cs)`, the single conversion point (`cs / 100` of a Fraction, then float()). Every
  value the formulas can produce (k/256 cs, k <= 255 * 4095 * 4) is a dyadic rational divided by
  100, so the float is the nearest double to the exact value.

Formulas:

* v3: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256            [cs]
* v2: Skew_Time = (256 - Priority) / 256 s = (256 - Priority) * 100 / 256    [cs]
  (RFC 3768 has no interval term: the v2 skew is the same at any advert interval)
* both: Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time           [cs]

`Priority` is the local router's own priority (RFC 9568 §6.1), 1..255 for a running router.
"""
from __future__ import annotations

from fractions import Fraction

#: v3 Max Advertise Interval field limits in centiseconds (RFC 9568 §5.2.7, erratum 8301).
MIN_INTERVAL_CS = 1
MAX_INTERVAL_CS = 4095
#: v2 Adver Int is whole seconds, 1..255 (RFC 3768 §5.3.7), i.e. 100..25500 cs.
MAX_INTERVAL_CS_V2 = 255 * 100


def _check(priority: int, interval_cs: int, version: int) -> None:
    if version not in (2, 3):
        raise ValueError(f"VRRP version must be 2 or 3, got {version}")
    if not 0 <= priority <= 255:
        raise ValueError(f"priority must be 0..255, got {priority}")
    if interval_cs < MIN_INTERVAL_CS:
        raise ValueError(f"advert interval must be >= 1 cs, got {interval_cs}")


def skew_time_cs(priority: int, interval_cs: int, version: int = 3) -> Fraction:
    """Skew_Time in exact centiseconds.

    v3 (RFC 9568 §6.1): ((256 - priority) * interval_cs) / 256.
    v2 (RFC 3768 §6.1): (256 - priority) / 256 seconds, independent of the interval.
    """
    _check(priority, interval_cs, version)
    if version == 2:
        return Fraction((256 - priority) * 100, 256)
    return Fraction((256 - priority) * interval_cs, 256)


def master_down_interval_cs(priority: int, interval_cs: int, version: int = 3) -> Fraction:
    """Master_Down_Interval (v3: Active_Down_Interval) = 3 * interval_cs + Skew_Time, exact cs."""
    return 3 * interval_cs + skew_time_cs(priority, interval_cs, version)


def seconds(cs: Fraction | int) -> float:
    """Centiseconds to float seconds: the single rounding point, used when arming a deadline."""
    return float(Fraction(cs) / 100)


def handover_bound_cs(interval_cs: int, version: int = 3) -> Fraction:
    """Longest Master_Down_Interval any backup of this VR can run: the one of priority 1.

    A make-before-break master keeps its VIPs at most this long after its priority-0 advert:
    even if that advert is lost, the slowest backup takes over within this time.
    """
    return master_down_interval_cs(1, interval_cs, version)
