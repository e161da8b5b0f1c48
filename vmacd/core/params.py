"""RouterParams: the frozen configuration of one virtual router, as the state machine needs it.

The config loader (vmacd/config) validates the user's TOML and names the key path in its errors;
this class re-checks the invariants the state machine relies on and raises ValueError naming the
field, so a bad value can never reach the FSM.
"""
from __future__ import annotations

from dataclasses import dataclass

from vmacd.core import timers
from vmacd.core.proto import IPAddress

HANDOVER_MODES = ("make-before-break", "rfc")


@dataclass(frozen=True)
class RouterParams:
    """One VR's parameters (RFC 9568 §6.1 plus vmacd's extensions). Units in the comments."""

    vrid: int                             # 1..255 (§6.1 VRID)
    primary: IPAddress                    # our own source: IPv4 primary / IPv6 link-local
    vips: tuple[IPAddress, ...]           # IPvX addresses (IPv6: link-local first, §6.1-3, or
                                          # none: config ipv6_link_local_first = false)
    version: int = 3                      # 2 (RFC 3768, IPv4 only) | 3 (RFC 9568)
    priority: int = 100                   # 1..254, or 255 = address owner (§6.1, default 100)
    interval_cs: int = 100                # Advertisement_Interval, centiseconds (v2: k * 100)
    preempt: bool = True                  # Preempt_Mode (§6.1, default True)
    preempt_delay: float = 0.0            # seconds, see fsm module docstring
    accept: bool = False                  # Accept_Mode (§6.1, default False); for the daemon
    startup_delay: float = 0.0            # seconds a fresh start holds back before claiming
    garp_repeat: int = 3                  # gratuitous ARPs / NAs per VIP on becoming master
    graceful_handover: str = "make-before-break"   # | "rfc" (§6.4.3: release at once)
    name: str = ""                        # instance name (logs, status)
    stop_before_leave: bool = False       # stop resources before priority 0 (exclusive storage)
    history_size: int = 64                # transitions kept in the history ring
    log_interval: float = 60.0            # seconds: at most one log line per kind per window

    def __post_init__(self) -> None:
        def bad(field: str, want: str, got: object) -> ValueError:
            return ValueError(f"{field}: must be {want}, got {got!r}")

        if not 1 <= self.vrid <= 255:
            raise bad("vrid", "1..255", self.vrid)
        if self.version not in (2, 3):
            raise bad("version", "2 or 3", self.version)
        if not 1 <= self.priority <= 255:
            raise bad("priority", "1..255", self.priority)
        top = timers.MAX_INTERVAL_CS if self.version == 3 else timers.MAX_INTERVAL_CS_V2
        if not timers.MIN_INTERVAL_CS <= self.interval_cs <= top:
            raise bad("interval_cs", f"1..{top}", self.interval_cs)
        if self.version == 2 and self.interval_cs % 100:
            raise bad("interval_cs", "whole seconds (a multiple of 100) for VRRPv2", self.interval_cs)
        if not self.vips:
            raise bad("vips", "at least one address", self.vips)
        fams = {a.version for a in self.vips} | {self.primary.version}
        if len(fams) != 1:
            raise bad("vips", "one address family, the primary's", self.vips)
        if self.version == 2 and self.family == 6:
            raise bad("version", "3 for IPv6", self.version)
        if self.family == 6 and not self.vips[0].is_link_local \
                and any(a.is_link_local for a in self.vips):
            raise bad("vips", "an IPv6 list with its link-local VIP first", self.vips)
        if self.preempt_delay < 0 or self.startup_delay < 0:
            raise bad("preempt_delay/startup_delay", ">= 0 s",
                      (self.preempt_delay, self.startup_delay))
        if self.graceful_handover not in HANDOVER_MODES:
            raise bad("graceful_handover", " or ".join(HANDOVER_MODES), self.graceful_handover)
        if self.garp_repeat < 1 or self.history_size < 1 or self.log_interval <= 0:
            raise bad("garp_repeat/history_size/log_interval", "positive",
                      (self.garp_repeat, self.history_size, self.log_interval))

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.primary.version

    @property
    def owner(self) -> bool:
        """Priority 255: the IP address owner (§6.1). The loader sets 255 when a VIP is ours."""
        return self.priority == 255
