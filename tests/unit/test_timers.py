"""core/timers.py: Skew_Time and Master_Down_Interval, exact centiseconds (RFC 9568 §6.1)."""
from __future__ import annotations

from fractions import Fraction

import pytest

from vmacd.core import timers


@pytest.mark.rfc("9568-6.1-6", "holds")
@pytest.mark.parametrize("prio, interval, want", [
    (100, 100, Fraction(609375, 10000)),   # the RFC's 60.94 cs
    (254, 100, Fraction(78125, 100000)),   # the RFC's 0.78 cs
    (1, 100, Fraction(25500, 256)),
    (255, 4095, Fraction(4095, 256)),
    (200, 50, Fraction(56 * 50, 256)),
])
def test_v3_skew_is_exact(prio, interval, want):
    assert timers.skew_time_cs(prio, interval) == want
    assert round(float(timers.skew_time_cs(prio, interval)), 2) == round(float(want), 2)


def test_rfc_examples_rounded_to_hundredths():
    assert f"{float(timers.skew_time_cs(100, 100)):.2f}" == "60.94"
    assert f"{float(timers.skew_time_cs(254, 100)):.2f}" == "0.78"
    assert f"{float(timers.master_down_interval_cs(100, 100)):.2f}" == "360.94"


@pytest.mark.rfc("9568-6.1-6", "refused")
def test_v3_skew_scales_with_interval_unlike_v2():
    # the v2 formula has no interval term: at 50 cs the two must differ
    v3 = timers.skew_time_cs(100, 50, version=3)
    v2 = timers.skew_time_cs(100, 50, version=2)
    assert v3 == Fraction(156 * 50, 256) and v3 != v2
    assert timers.skew_time_cs(100, 100, version=3) == 2 * v3


def test_v2_skew_is_seconds_based():
    # RFC 3768: (256 - 100) / 256 s = 0.609375 s = 60.9375 cs at any interval
    assert timers.skew_time_cs(100, 100, version=2) == Fraction(609375, 10000)
    assert timers.skew_time_cs(100, 300, version=2) == Fraction(609375, 10000)
    assert timers.master_down_interval_cs(100, 300, version=2) == 900 + Fraction(609375, 10000)


@pytest.mark.rfc("9568-6.1-7", "holds")
def test_master_down_interval():
    assert timers.master_down_interval_cs(100, 100) == Fraction(3609375, 10000)
    assert timers.master_down_interval_cs(254, 100) == 300 + Fraction(78125, 100000)
    assert timers.seconds(timers.master_down_interval_cs(100, 100)) == 3.609375


@pytest.mark.rfc("9568-6.1-7", "refused")
def test_master_down_interval_is_not_3_intervals_alone():
    assert timers.master_down_interval_cs(100, 100) != 300
    assert timers.seconds(timers.master_down_interval_cs(100, 100)) > 3.6


@pytest.mark.parametrize("args", [(100, 0), (256, 100), (-1, 100)])
def test_bad_inputs_raise(args):
    with pytest.raises(ValueError):
        timers.skew_time_cs(*args)
    with pytest.raises(ValueError):
        timers.skew_time_cs(100, 100, version=4)


def test_seconds_is_the_only_rounding_point():
    # every k/256 cs value converts to the nearest double of k/25600 s
    for k in (1, 255, 156 * 100, 255 * 4095):
        assert timers.seconds(Fraction(k, 256)) == k / 25600


def test_handover_bound_covers_every_backup():
    for prio in range(1, 255):
        assert timers.master_down_interval_cs(prio, 100) <= timers.handover_bound_cs(100)
