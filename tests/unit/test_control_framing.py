"""LineFramer: one item per line whatever the cuts, over-long lines reported early and skipped."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmacd.control.framing import LineFramer, Oversize

BIG = Oversize(8)


def frame(chunks: list[bytes], limit: int = 8) -> list[bytes | Oversize]:
    f = LineFramer(limit)
    out: list[bytes | Oversize] = []
    for c in chunks:
        out += f.feed(c)
    return out + f.close()


def test_lines_in_order_without_terminators():
    assert frame([b"one\ntwo\r\nthree\n"]) == [b"one", b"two", b"three"]


def test_empty_lines_are_items_too():
    assert frame([b"\n\r\n\n"]) == [b"", b"", b""]


def test_partial_last_line_is_answered_at_eof():
    assert frame([b"one\ntw", b"o"]) == [b"one", b"two"]
    assert frame([b"one\ntwo\r"]) == [b"one", b"two"]
    assert frame([b"one\n"]) == [b"one"]
    assert frame([]) == []


def test_limit_is_on_the_line_without_its_terminator():
    assert frame([b"12345678\n", b"12345678\r\n", b"123456789\n"]) == [b"12345678", b"12345678", BIG]


def test_overlong_line_is_reported_before_its_end_and_not_buffered():
    f = LineFramer(8)
    assert f.feed(b"123456789") == [BIG]          # 9 bytes and no \r: cannot fit any more
    assert f.buffered == 0
    assert f.feed(b"x" * 100_000) == [] and f.buffered == 0
    assert f.feed(b"tail\nnext\n") == [b"next"]    # the rest of the long line is skipped
    assert f.close() == []


def test_a_line_of_limit_plus_cr_waits_for_the_newline():
    f = LineFramer(8)
    assert f.feed(b"12345678\r") == [] and f.buffered == 9
    assert f.feed(b"\n") == [b"12345678"]
    f = LineFramer(8)
    assert f.feed(b"12345678\r") == []
    assert f.feed(b"x") == [BIG]


def test_overlong_partial_line_at_eof_is_one_error():
    assert frame([b"ok\n", b"x" * 20]) == [b"ok", BIG]
    assert frame([b"ok\n", b"12345678\r"]) == [b"ok", b"12345678"]


def test_cut_points_do_not_matter_byte_by_byte():
    stream = b"a\r\n\n123456789\r\nxyz\r\n" + b"w" * 9 + b"\nlast"
    whole = frame([stream])
    assert frame([bytes([b]) for b in stream]) == whole
    assert whole == [b"a", b"", BIG, b"xyz", BIG, b"last"]


def test_close_is_final():
    f = LineFramer(4)
    f.feed(b"ab")
    assert f.close() == [b"ab"] and f.close() == []
    with pytest.raises(ValueError, match="after close"):
        f.feed(b"x")


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        LineFramer(0)


def _model(stream: bytes, limit: int) -> list[bytes | Oversize]:
    pieces = stream.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    out: list[bytes | Oversize] = []
    for p in pieces:
        p = p[:-1] if p.endswith(b"\r") else p
        out.append(Oversize(limit) if len(p) > limit else p)
    return out


@settings(max_examples=300, deadline=None)
@given(stream=st.binary(max_size=80).map(lambda b: b.replace(b"\x00", b"\n")),
       limit=st.integers(1, 12), cuts=st.lists(st.integers(0, 80), max_size=8))
def test_matches_split_on_newline_and_bounds_the_buffer(stream, limit, cuts):
    f, got = LineFramer(limit), []
    bounds = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        got += f.feed(stream[a:b])
        assert f.buffered <= limit + 1
    assert got + f.close() == _model(stream, limit)
