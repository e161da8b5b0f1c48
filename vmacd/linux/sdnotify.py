"""systemd notification protocol (sd_notify(3)) without libsystemd.

`Notifier.from_env()` reads $NOTIFY_SOCKET (a path, or `@name` for an abstract socket) and
$WATCHDOG_USEC / $WATCHDOG_PID; outside systemd it returns a Notifier that does nothing, so the
daemon calls it unconditionally: `ready()` once the sockets are up, `status(text)` on changes,
`watchdog()` from the event loop every `watchdog_interval()` seconds, `stopping()` on SIGTERM.
Sending never raises: a notification that cannot be delivered is logged once and returns False.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from vmacd.loop import Loop, Timer

log = logging.getLogger("vmacd.sdnotify")


class Repeating:
    """The handle of a repeating ping: cancel() stops whichever timer is armed now."""

    def __init__(self, holder: list[Timer]) -> None:
        self._holder = holder

    def cancel(self) -> None:
        self._holder[0].cancel()


def socket_address(value: str) -> str | bytes:
    """$NOTIFY_SOCKET -> an AF_UNIX address; `@name` is the abstract socket `\\0name`."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends datagrams to systemd's notify socket; a no-op when `address` is None."""

    def __init__(self, address: str | bytes | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, unset: bool = False) -> Notifier:
        """Build from the environment; `unset=True` removes the variables from os.environ so
        track scripts and resources started later do not inherit them."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET") or None
        address = socket_address(raw) if raw else None
        usec: int | None = None
        wd = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if wd.isdigit() and int(wd) > 0 and (not pid or pid == str(os.getpid())):
            usec = int(wd)
        if unset and environ is None:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(name, None)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of WatchdogSec, as sd_watchdog_enabled advises."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2_000_000

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` lines (`notify(READY=1, STATUS="...")`). True when delivered."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(STOPPING=1, **({"STATUS": status} if status else {}))

    def reloading(self) -> bool:
        return self.notify(RELOADING=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def run_watchdog(self, loop: Loop) -> Repeating | None:
        """Ping WATCHDOG=1 from `loop` every watchdog_interval() (None when there is no watchdog);
        cancel the returned handle to stop. Pinging from the loop itself means a blocked loop stops
        the pings, and systemd aborts and restarts us."""
        interval = self.watchdog_interval()
        if interval is None or not self.enabled:
            return None
        self.watchdog()
        holder: list[Timer] = []

        def ping() -> None:
            self.watchdog()
            holder[0] = loop.call_later(interval, ping)

        holder.append(loop.call_later(interval, ping))
        return Repeating(holder)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
