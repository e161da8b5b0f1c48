"""Duration strings: exact decimal parsing, units ms/s/m/h, sums; refused forms name the rule."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmacd.config.durations import DurationError, format_us, parse_seconds, parse_us


@pytest.mark.parametrize("text,us", [
    ("0s", 0), ("10ms", 10_000), ("1.5s", 1_500_000), ("40.95s", 40_950_000), ("2m", 120_000_000),
    ("1h", 3_600_000_000), ("1m30s", 90_000_000), (" 100ms ", 100_000), ("0.001ms", 1),
])
def test_parse(text, us):
    assert parse_us(text) == us


@pytest.mark.parametrize("value", ["", "1", "100 ms", "1.5", "-1s", "1sec", "1e3ms", "0.0001ms",
                                   1, 1.5, None])
def test_refused(value):
    with pytest.raises(DurationError):
        parse_us(value)


def test_seconds():
    assert parse_seconds("250ms") == 0.25


@given(st.integers(min_value=0, max_value=10**12))
def test_format_round_trips(us):
    assert parse_us(format_us(us)) == us


def test_format_prefers_short_forms():
    assert [format_us(x) for x in (0, 100_000, 1_500_000, 120_000_000, 3_600_000_000, 2_000_000)] == \
        ["0s", "100ms", "1.5s", "2m", "1h", "2s"]


@pytest.mark.parametrize("text", ["1.00000000000000000000000000001s", "0." + "0" * 40 + "1h"])
def test_long_fractions_are_not_rounded(text):
    with pytest.raises(DurationError, match="whole number of microseconds"):
        parse_us(text)


def test_long_numbers_stay_exact():
    assert parse_us("1" * 60 + "ms") == int("1" * 60) * 1000
