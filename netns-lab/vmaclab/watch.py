"""Sampling threads for what a scenario must hold throughout: the client's neighbour entry for a
VIP (``NeighWatch``) and where a shared filesystem is mounted (``MountWatch``).

Mount namespaces: ``ip netns exec`` gives every command it starts a private mount namespace (a
slave copy of the host's), so a mount made by a node's daemon, or by a command that daemon runs,
is seen by that daemon and its children only, not by the host's ``/proc/mounts`` nor by the other
node -- as on two machines. ``node_mounts`` therefore reads the mount table of every mount
namespace in use by a process of the node's network namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path


class _Sampler:
    """A daemon thread calling ``sample()`` every *period_s* until ``stop()``."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=type(self).__name__)
        self.error: str | None = None

    def start(self) -> _Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> _Sampler:
        self._stop.set()
        self._thread.join(timeout=10)
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.sample()
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"

    def sample(self) -> None:
        raise NotImplementedError


class NeighWatch(_Sampler):
    """The neighbour entries of *ips* in namespace *ns*; ``changes`` lists each new MAC per IP."""

    def __init__(self, ns: str, ips: list[str], period_s: float = 0.05) -> None:
        super().__init__(period_s)
        self.ns, self.ips = ns, list(ips)
        self.current: dict[str, str | None] = dict.fromkeys(ips)
        self.changes: list[dict] = []
        self.counts: dict[str, dict[str, int]] = {ip: {} for ip in ips}

    def sample(self) -> None:
        out = subprocess.run(["ip", "-n", self.ns, "-4", "-j", "neigh", "show"], capture_output=True,
                             text=True, timeout=5, check=True).stdout
        t = time.monotonic_ns()
        seen = {e.get("dst"): e.get("lladdr") for e in json.loads(out or "[]")}
        self.samples += 1
        for ip in self.ips:
            mac = seen.get(ip)
            key = mac or "none"
            self.counts[ip][key] = self.counts[ip].get(key, 0) + 1
            if mac != self.current[ip]:
                self.current[ip] = mac
                self.changes.append({"t_ns": t, "ip": ip, "mac": mac})

    def macs(self, ip: str, after_ns: int = 0) -> set[str | None]:
        """Every MAC the entry of *ip* had from *after_ns* on (None: no resolved entry)."""
        ch = [c for c in self.changes if c["ip"] == ip]
        held = [c["mac"] for c in ch if c["t_ns"] <= after_ns][-1:]
        return set(held + [c["mac"] for c in ch if c["t_ns"] > after_ns])

    def to_dict(self) -> dict:
        return {"samples": self.samples, "changes": self.changes, "counts": self.counts,
                "error": self.error}


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _device_mounts(path: str, device: str) -> list[str]:
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    return [f[1] for f in (line.split() for line in text.splitlines())
            if len(f) > 1 and f[0] == device]


def node_mounts(netns_ids: dict[str, str], homes: dict[str, str], device: str
                ) -> dict[str, list[str]]:
    """Per node, the mountpoints of *device* that node has.

    A node has what is mounted in the mount namespace of any of its processes (*netns_ids*:
    node -> ``net:[inode]`` of its network namespace), and what the host's namespace has mounted
    under its work directory (*homes*: node -> path)."""
    by_net = {v: k for k, v in netns_ids.items()}
    found: dict[str, set[str]] = {node: set() for node in netns_ids}
    for point in _device_mounts("/proc/self/mounts", device):
        for node, home in homes.items():
            if point == home or point.startswith(home.rstrip("/") + "/"):
                found[node].add(point)
    seen_mnt: set[tuple[str, str]] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        node = by_net.get(_link(f"/proc/{entry.name}/ns/net") or "")
        mnt = _link(f"/proc/{entry.name}/ns/mnt") if node else None
        if mnt is None or (node, mnt) in seen_mnt:
            continue
        seen_mnt.add((node, mnt))
        found[node] |= set(_device_mounts(f"/proc/{entry.name}/mounts", device))
    return {node: sorted(points) for node, points in found.items()}


def mount_holder(netns_id_: str, device: str) -> int | None:
    """A pid of the network namespace *netns_id_* whose mount namespace has *device* mounted."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _link(f"/proc/{entry.name}/ns/net") == netns_id_ \
                and _device_mounts(f"/proc/{entry.name}/mounts", device):
            return int(entry.name)
    return None


class MountWatch(_Sampler):
    """Which nodes have *device* mounted, sampled; ``overlaps`` are samples with two or more."""

    def __init__(self, netns_ids: dict[str, str], homes: dict[str, str], device: str,
                 period_s: float = 0.02) -> None:
        super().__init__(period_s)
        self.netns_ids, self.homes, self.device = dict(netns_ids), dict(homes), device
        self.current: dict[str, list[str]] = {}
        self.changes: list[dict] = []
        self.overlaps: list[dict] = []
        self.mounted_samples = dict.fromkeys(netns_ids, 0)

    def sample(self) -> None:
        now = node_mounts(self.netns_ids, self.homes, self.device)
        t = time.monotonic_ns()
        self.samples += 1
        holders = [n for n, points in now.items() if points]
        for n in holders:
            self.mounted_samples[n] += 1
        if len(holders) > 1:
            self.overlaps.append({"t_ns": t, "mounts": now})
        if now != self.current:
            self.current = now
            self.changes.append({"t_ns": t, "mounts": now})

    def to_dict(self) -> dict:
        return {"samples": self.samples, "changes": self.changes, "overlaps": self.overlaps,
                "mounted_samples": self.mounted_samples, "error": self.error}


def netns_id(ns: str) -> str:
    """``net:[inode]`` of the named network namespace, as /proc/PID/ns/net reads for its members."""
    return f"net:[{os.stat(f'/run/netns/{ns}').st_ino}]"
