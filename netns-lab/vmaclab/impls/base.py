"""The one small interface every VRRP implementation of the lab offers (vmacd, keepalived, FRR)."""
from __future__ import annotations

import abc
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..util import kill

if TYPE_CHECKING:
    from ..lab import Lab

STATES = ("init", "backup", "master", "fault", "stopped", "unknown")


@dataclass
class RouterConfig:
    """One VRRP instance of one router, in implementation-neutral terms."""
    node: str
    lan: str
    vrid: int
    vip: str
    priority: int
    advert_ms: int
    version: int = 3
    preempt: bool = True
    vmac: bool = True
    track: dict | None = None          # {"file": PATH, "weight": 0} — a marker file the check tests
    extra: dict = field(default_factory=dict)

    @property
    def family(self) -> int:
        """4 or 6, from the VIP."""
        return 6 if ":" in self.vip else 4

    @property
    def vmac_addr(self) -> str:
        """00:00:5e:00:01:VRID (IPv4) or 00:00:5e:00:02:VRID (IPv6)."""
        return f"00:00:5e:00:0{1 if self.family == 4 else 2}:{self.vrid:02x}"


class Router(abc.ABC):
    """One VRRP daemon (set) on one lab node. Create, ``configure``, ``start``, ``stop``."""

    #: registry name ("keepalived", "frr", "vmacd")
    name: str = "base"

    def __init__(self) -> None:
        self.lab: Lab | None = None
        self.cfg: RouterConfig | None = None
        #: (monotonic time, state) each time the implementation reported a state
        self.history: list[tuple[float, str]] = []

    def configure(self, lab: Lab, node: str, lan: str, vrid: int, vip: str, priority: int,
                  advert_ms: int, version: int = 3, preempt: bool = True, vmac: bool = True,
                  track: dict | None = None, **extra: object) -> Router:
        """Record the instance and write the implementation's config files; returns self."""
        if version == 2 and advert_ms % 1000:
            raise ValueError(f"VRRPv2 advertisement interval must be whole seconds, got {advert_ms} ms")
        if not 1 <= vrid <= 255 or not 1 <= priority <= 255:
            raise ValueError(f"vrid/priority out of range: {vrid}/{priority}")
        self.lab = lab
        self.cfg = RouterConfig(node, lan, vrid, vip, priority, advert_ms, version, preempt, vmac,
                                track, dict(extra))
        self.write_config()
        return self

    @property
    def dir(self) -> Path:
        """This router's work directory (configs, sockets, pid files, logs)."""
        assert self.lab is not None, "configure() first"
        return self.lab.workdir(self.node)

    @property
    def node(self) -> str:
        """The lab node this router runs on."""
        assert self.cfg is not None, "configure() first"
        return self.cfg.node

    def _record(self, state: str) -> None:
        self.history.append((time.monotonic(), state))

    @abc.abstractmethod
    def write_config(self) -> None:
        """Write the config files into ``lab.workdir(node)`` (also prepares links the impl needs)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the daemon(s) in the node's namespace and return once they run."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the daemon(s) gracefully (SIGTERM), SIGKILL what does not exit in time."""

    @abc.abstractmethod
    def pids(self) -> dict[str, int]:
        """Live daemon processes by role, e.g. {"keepalived": 10, "vrrp": 11}; empty when stopped."""

    @abc.abstractmethod
    def state(self) -> str:
        """Current VRRP state: one of ``STATES``."""

    def vrrp_pids(self) -> list[int]:
        """The processes that speak VRRP (SIGKILLed by ``kill``, SIGSTOPped by ``freeze``)."""
        return list(self.pids().values())

    def kill_daemon(self) -> None:
        """SIGKILL the VRRP daemon only (``kill``); what it configured on the box stays."""
        self.crash_kill()

    def term_pids(self) -> list[int]:
        """The process a graceful stop signals (``term``)."""
        return self.vrrp_pids()

    def crash_kill(self) -> None:
        """SIGKILL every daemon at once with no chance to say goodbye (``crash``)."""
        for pid in self.pids().values():
            kill(pid, signal.SIGKILL)
