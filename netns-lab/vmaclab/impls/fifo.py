"""State reports from a notify fifo, for routers whose daemon writes keepalived's line format.

keepalived writes ``INSTANCE "VI_51" MASTER 200`` lines to its notify_fifo; the vmacd lab router's
notify script writes the same lines. A reader thread turns each into ``Router._record(state)``.
"""
from __future__ import annotations

import os
import select
import threading
from pathlib import Path

STATE_WORDS = {"MASTER": "master", "BACKUP": "backup", "FAULT": "fault", "STOP": "stopped",
               "STOPPED": "stopped", "DELETED": "stopped", "INIT": "init"}


class NotifyFifo:
    """Mixin for a Router: `_make_fifo()` in write_config, `_open_fifo()` before the daemon
    starts, `_close_fifo()` after it stopped; `_state` holds the last state reported."""

    dir: Path
    node: str

    def _fifo_init(self) -> None:
        self._fifo_fd: int | None = None
        self._reader: threading.Thread | None = None
        self._stop_reader = threading.Event()
        self._state = "init"

    @property
    def fifo_path(self) -> Path:
        return self.dir / "notify.fifo"

    def _make_fifo(self) -> None:
        if not self.fifo_path.exists():
            os.mkfifo(self.fifo_path, 0o600)

    def _open_fifo(self) -> None:
        if self._fifo_fd is not None:
            return
        self._fifo_fd = os.open(self.fifo_path, os.O_RDWR | os.O_NONBLOCK)
        self._stop_reader.clear()
        self._reader = threading.Thread(target=self._read_fifo, daemon=True,
                                        name=f"{type(self).__name__}-fifo-{self.node}")
        self._reader.start()

    def _close_fifo(self) -> None:
        self._stop_reader.set()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._fifo_fd is not None:
            os.close(self._fifo_fd)
        self._fifo_fd, self._reader = None, None

    def _read_fifo(self) -> None:
        buf = b""
        while not self._stop_reader.is_set():
            ready, _, _ = select.select([self._fifo_fd], [], [], 0.1)
            if not ready:
                continue
            try:
                buf += os.read(self._fifo_fd, 4096)
            except BlockingIOError:
                continue
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self._parse(line.decode(errors="replace"))

    def _parse(self, line: str) -> None:
        """One line: INSTANCE NAME STATE PRIORITY."""
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "INSTANCE" and parts[2] in STATE_WORDS:
            self._state = STATE_WORDS[parts[2]]
            self._record(self._state)
