"""Small helpers shared by the lab: subprocess wrappers, waiting, per-run prefixes and paths."""
from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("vmaclab")

#: Every kernel object and file of one lab run carries this prefix: ``vl`` + 5 hex digits + ``-``.
PREFIX_RE = re.compile(r"^vl[0-9a-f]{5}-$")
#: Root of the per-run state (state.json, configs, pid files, sockets, logs).
RUN_ROOT = Path(os.environ.get("VMACLAB_RUN_ROOT", "/run/vmaclab"))

T = TypeVar("T")


class LabError(RuntimeError):
    """A lab operation failed (with the command and its output in the message)."""


def new_prefix() -> str:
    """Return a fresh per-run prefix such as ``vl3fa9c-``."""
    return "vl" + secrets.token_hex(3)[:5] + "-"


def check_prefix(prefix: str) -> str:
    """Return *prefix* unchanged when it has the lab's shape, else raise ValueError."""
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"lab prefix must look like 'vl' + 5 hex + '-', got {prefix!r}")
    return prefix


def run(argv: Sequence[str], check: bool = True, timeout: float = 20.0,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one command (no shell), capture text output; raise LabError on failure when *check*."""
    try:
        cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            input=input, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timeout after {timeout}s: {' '.join(argv)}") from exc
    if check and cp.returncode != 0:
        raise LabError(f"command failed ({cp.returncode}): {' '.join(argv)}\n"
                       f"{cp.stderr.strip() or cp.stdout.strip()}")
    return cp


def wait_until(pred: Callable[[], T], timeout: float, interval: float = 0.02,
               what: str = "condition") -> T:
    """Poll *pred* until it returns a truthy value and return it; raise TimeoutError after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int | None) -> bool:
    """True when *pid* names a live (non-zombie) process."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def kill(pid: int | None, sig: int = signal.SIGKILL) -> bool:
    """Send *sig* to *pid*; False when it no longer exists."""
    if not pid:
        return False
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def read_pidfile(path: Path) -> int | None:
    """Return the pid stored in *path*, or None when absent or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def parse_duration_ms(text: str | float) -> int:
    """Parse ``"100ms"``, ``"1s"``, ``"1.5s"``, ``"10m"`` or a bare number of ms into integer
    milliseconds."""
    if isinstance(text, (int, float)):
        return int(text)
    s = text.strip().lower()
    if s.endswith("ms"):
        return int(float(s[:-2]))
    if s.endswith("s"):
        return round(float(s[:-1]) * 1000)
    if s.endswith("m"):
        return round(float(s[:-1]) * 60_000)
    return int(float(s))
