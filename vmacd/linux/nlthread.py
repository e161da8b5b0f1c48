"""Run the netlink manager on one dedicated thread, callable from the asyncio loop.

pyroute2 (0.9) implements its synchronous IPRoute on an asyncio loop of its own, which cannot
run inside the daemon's running loop. Every VmacManager call therefore goes to a single worker
thread that owns the IPRoute socket; the loop waits for the result (a netlink round trip takes
about a millisecond), so actions still execute strictly in the order the state machine gave
them (ClaimVips before Announce: RFC 9568 §8.1.2-5). A call that hangs longer than
NETLINK_TIMEOUT raises instead of stalling advertisements forever.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from vmacd.linux.netlink import LinkError, VmacManager

NETLINK_TIMEOUT = 5.0   # seconds


class ThreadedVmacs:
    """A VmacManager whose methods run on the `netlink` thread; same method names."""

    def __init__(self) -> None:
        self._ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netlink")
        self._vm: VmacManager = self._ex.submit(VmacManager).result(NETLINK_TIMEOUT)

    def call(self, fn: Callable[[VmacManager], Any]) -> Any:
        """Run `fn(manager)` on the netlink thread and return its result."""
        try:
            return self._ex.submit(fn, self._vm).result(NETLINK_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise LinkError(f"netlink did not answer within {NETLINK_TIMEOUT:g} s") from None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(VmacManager, name)
        if not callable(method):
            raise AttributeError(name)  # noqa: TRY004 - attribute protocol, not a type check
        return lambda *a, **kw: self.call(lambda vm: getattr(vm, name)(*a, **kw))

    def close(self) -> None:
        try:
            self.call(lambda vm: vm.close())
        finally:
            self._ex.shutdown(wait=True)
