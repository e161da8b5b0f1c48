"""Line framing of the control socket: a byte stream in, request lines out. Pure, no I/O.

Contract (the control server feeds whatever `recv()` returned, in order, then calls `close()`
once the peer has shut down its side):

* The stream is split at every ``\\n``. Each line, complete or the partial last one at EOF, gives
  exactly one item, in stream order: the line's bytes without its terminator (``\\n`` or
  ``\\r\\n``: one ``\\r`` before the ``\\n`` is dropped), or `Oversize` when those bytes are more
  than `max_line`. Empty lines give ``b""`` (the server answers them with an error too).
* An over-long line is reported as soon as it is known to be too long, before its end arrives,
  and the rest of it is skipped without being stored: after any `feed()` at most
  ``max_line + 1`` bytes are buffered, whatever the peer sends.
* `close()` (EOF) returns the partial last line when there is one: bytes after the last ``\\n``
  are a line of their own (a trailing ``\\r`` dropped as above), so ``printf '{"cmd":"status"}'``
  without a newline is answered; nothing when the stream ended with ``\\n``, or when the partial
  line was already reported as `Oversize`. After `close()` the framer refuses input (ValueError).

How the stream was cut into `feed()` calls never changes the items, only when they come out.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Oversize:
    """Stands for one line longer than `limit` bytes, which was skipped."""

    limit: int


class LineFramer:
    """Splits a byte stream into lines of at most `max_line` bytes (see the module docstring)."""

    def __init__(self, max_line: int) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, got {max_line}")
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False   # inside an over-long line already reported
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes of the current partial line held (at most max_line + 1)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        """The items completed by `data` (possibly none)."""
        if self._closed:
            raise ValueError("feed() after close()")
        out: list[bytes | Oversize] = []
        start, end = 0, len(data)
        while start < end:
            nl = data.find(b"\n", start)
            stop = end if nl < 0 else nl
            if not self._skipping:
                self._buf += data[start:stop]
            if nl < 0:
                self._check_partial(out)
                break
            if self._skipping:
                self._skipping = False
            else:
                out.append(self._line())
            start = nl + 1
        return out

    def close(self) -> list[bytes | Oversize]:
        """EOF: the partial last line, if any and not already reported."""
        if self._closed:
            return []
        self._closed = True
        if self._skipping or not self._buf:
            self._buf.clear()
            return []
        return [self._line()]

    def _line(self) -> bytes | Oversize:
        line = bytes(self._buf)
        self._buf.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        return Oversize(self.max_line) if len(line) > self.max_line else line

    def _check_partial(self, out: list[bytes | Oversize]) -> None:
        """Report the partial line once it cannot fit any more, even with a \\r\\n ending."""
        size = len(self._buf)
        if size > self.max_line + 1 or (size == self.max_line + 1 and self._buf[-1:] != b"\r"):
            out.append(Oversize(self.max_line))
            self._buf.clear()
            self._skipping = True
