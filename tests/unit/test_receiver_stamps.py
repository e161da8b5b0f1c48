"""receiver._arrived: a kernel arrival stamp (CLOCK_REALTIME) becomes loop time; a stamp that
cannot be right (none, in the future, or older than a second: the wall clock was stepped)
counts as the moment of the read."""
from __future__ import annotations

import pytest

from vmacd.receiver import _arrived

OFFSET = 1_700_000_000.0          # realtime minus loop time at the read


@pytest.mark.parametrize(("stamp", "want"), [
    (OFFSET + 99.985, 99.985),     # 15 ms before the read: timed from its arrival
    (OFFSET + 100.0, 100.0),
    (None, 100.0),                 # no stamp
    (OFFSET + 100.5, 100.0),       # in the future: the wall clock moved back meanwhile
    (OFFSET + 98.5, 100.0),        # more than a second back: stepped clock, not a real wait
])
def test_arrival_stamps_in_loop_time(stamp, want):
    assert _arrived(stamp, OFFSET, 100.0) == pytest.approx(want, abs=1e-6)
