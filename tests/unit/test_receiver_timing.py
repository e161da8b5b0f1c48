"""The receiver's timing.

receiver._arrived: a kernel arrival stamp (CLOCK_REALTIME) becomes loop time; a stamp that cannot
be right (none, in the future, or older than a second: the wall clock was stepped) counts as the
moment of the read. Receiver._readable: a socket of one instance, or with a master on it, is read
at once; one shared by backups is held for the shortest hold-off, capped."""
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


# --- when a socket is read: at once, or held for a batch ---------------------------------------

class _Loop:
    def __init__(self) -> None:
        self.later: list[tuple[float, object]] = []
        self.removed: list[int] = []

    def remove_reader(self, fd: int) -> None:
        self.removed.append(fd)

    def call_later(self, delay: float, fn, *args) -> None:
        self.later.append((delay, fn))


class _Sock:
    def fileno(self) -> int:
        return 7


class _Route:
    def __init__(self, holdoff: float) -> None:
        self.holdoff = holdoff


def _readable(holdoffs: list[float]) -> tuple[_Loop, list[bool]]:
    from vmacd.receiver import Receiver, _Port
    loop = _Loop()
    rx = Receiver(loop, None)   # type: ignore[arg-type]
    port = _Port(_Sock())       # type: ignore[arg-type]
    port.routes = {v: _Route(h) for v, h in enumerate(holdoffs, 1)}  # type: ignore[misc]
    reads: list[bool] = []
    port.read = reads.append
    rx._readable(port)
    return loop, reads


def test_a_socket_of_one_backup_is_read_at_once():
    loop, reads = _readable([0.025])
    assert reads == [False] and not loop.removed and not loop.later


def test_a_socket_of_backups_is_held_for_the_shortest_holdoff():
    loop, reads = _readable([0.025, 0.005, 0.025])
    assert reads == [] and loop.removed == [7]
    assert [d for d, _ in loop.later] == [pytest.approx(0.005)]


def test_a_socket_with_a_master_is_read_at_once():
    loop, reads = _readable([0.025, 0.0, 0.025])
    assert reads == [False] and not loop.removed and not loop.later


def test_holdoff_never_exceeds_the_cap():
    from vmacd.receiver import HOLDOFF_MAX
    loop, _ = _readable([0.25, 0.25])
    assert [d for d, _ in loop.later] == [pytest.approx(HOLDOFF_MAX)]
