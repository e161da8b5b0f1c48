"""Tiny network-namespace helper for the vmacd.linux tests (not the lab package).

Every namespace and link it makes carries a per-run prefix (`vl<6 hex>-`), and `Netns.close()`
deletes exactly those namespaces, so a failed test never leaves anything behind and never touches
the root namespace or another engineer's namespaces.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Self

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def run(*argv: str, check: bool = True, input: str | None = None) -> str:
    """Run one command; return stdout; raise with stderr on failure when `check`."""
    res = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=30,
                         check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {res.returncode}: {res.stderr.strip()}")
    return res.stdout


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Switch the calling thread into namespace `ns` for the block (sockets made inside stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


def wait_until(pred: Callable[[], object], timeout: float = 3.0, step: float = 0.01) -> object:
    """Poll `pred` until truthy; return its value or raise AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


class Netns:
    """A set of namespaces sharing one random prefix; use as a context manager."""

    def __init__(self) -> None:
        self.prefix = f"vl{secrets.token_hex(3)}-"
        self.names: list[str] = []

    def add(self, short: str) -> str:
        """Create namespace `<prefix><short>` with lo up; return its full name."""
        name = self.prefix + short
        run("ip", "netns", "add", name)
        self.names.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def ip(self, ns: str, *args: str, check: bool = True) -> str:
        """`ip -n ns ARGS...`"""
        return run("ip", "-n", ns, *args, check=check)

    def sh(self, ns: str, *argv: str, check: bool = True, input: str | None = None) -> str:
        """Run a command inside namespace `ns`."""
        return run("ip", "netns", "exec", ns, *argv, check=check, input=input)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair between two namespaces, both ends up (created inside ns_a, never in root)."""
        self.ip(ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        self.ip(ns_a, "link", "set", if_a, "up")
        self.ip(ns_b, "link", "set", if_b, "up")

    def close(self) -> None:
        """Delete every namespace this object made (links inside go with them)."""
        for name in reversed(self.names):
            pids = run("ip", "netns", "pids", name, check=False).split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            run("ip", "netns", "del", name, check=False)
        self.names.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def veth_pair() -> Iterator[tuple[Netns, str, str]]:
    """(netns, r1, r2): r1 eth0 192.0.2.1/24 --veth-- r2 eth0 192.0.2.2/24, always torn down."""
    with Netns() as n:
        r1, r2 = n.add("r1"), n.add("r2")
        n.veth(r1, "eth0", r2, "eth0")
        n.ip(r1, "addr", "add", "192.0.2.1/24", "dev", "eth0")
        n.ip(r2, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        yield n, r1, r2
