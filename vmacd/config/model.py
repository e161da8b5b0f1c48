"""The configuration as a typed, immutable model (docs/config.md).

Everything is a frozen dataclass holding tuples, so two loads of the same text compare equal and a
reload can be diffed with `==` (see diff.py). References are resolved at load time: an Instance
holds the Auth, TrackScript and Resource objects it names, so a change to a referenced object
makes the instance itself compare unequal.

Durations are floats in seconds, except the advertisement interval, which the protocol carries in
centiseconds (RFC 9568 §5.2.7): it is stored as an int `advert_interval_cs`, with the seconds
derived from it, so no rounding can ever sneak in between config and wire.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AUTH_TYPES = ("none", "pass", "ah", "hmac-sha256")
VMAC_MODES = ("private", "bridge")
HANDOVER_MODES = ("make-before-break", "rfc")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

DEFAULT_PATH = "/etc/vmacd/vmacd.toml"
DEFAULT_CONTROL_SOCKET = "/run/vmacd/vmacd.sock"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9650"
DEFAULT_STATE_DIR = "/var/lib/vmacd"
DEFAULT_RT_PRIORITY = 5       # low in the real-time range: ahead of normal processes only
DEFAULT_PRIORITY = 100        # RFC 9568 §6.1 (9568-6.1-2)
DEFAULT_INTERVAL_CS = 100     # RFC 9568 §6.1 (9568-6.1-4): 1 s
OWNER_PRIORITY = 255          # address owner (9568-5.2.4-1)


@dataclass(frozen=True)
class Global:
    node: str                                   # Heartbeat 'node'; default: the hostname
    control_socket: str = DEFAULT_CONTROL_SOCKET
    metrics_listen: str = DEFAULT_METRICS_LISTEN  # "" disables the exporter
    notify: str | None = None                   # script run on every transition
    log_format: str = "text"                    # text | json
    log_level: str = "info"
    watchdog: float = 0.0                       # seconds; 0 = take WATCHDOG_USEC from systemd, if any
    state_dir: str = DEFAULT_STATE_DIR          # persistent state (maintenance --persist)
    realtime_priority: int = DEFAULT_RT_PRIORITY  # SCHED_RR priority; 0 = normal scheduling

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_listen != ""


@dataclass(frozen=True)
class Auth:
    """An [auth.NAME] table. `key` is None only for type none, or when files were not read."""

    name: str
    type: str                      # none | pass | ah | hmac-sha256
    key: bytes | None = None
    key_file: str | None = None    # absolute path, when the key came from a file


@dataclass(frozen=True)
class TrackScript:
    name: str
    command: tuple[str, ...]
    interval: float = 1.0
    timeout: float = 1.0
    rise: int = 1
    fall: int = 1


RESOURCE_KINDS = ("command", "filesystem")


@dataclass(frozen=True)
class Filesystem:
    """What a `kind = "filesystem"` resource mounts: shared storage that follows mastership."""

    device: str                    # /dev/..., UUID=..., LABEL=... or host:/export (NFS)
    mountpoint: str                # absolute
    fstype: str = "auto"
    options: str = ""              # mount -o OPTIONS ("" = defaults)


@dataclass(frozen=True)
class Resource:
    """A Heartbeat haresources entry: started in order on becoming master, stopped in reverse.

    `kind = "command"`: `start`/`stop` (and optional `monitor`) are argv lists.
    `kind = "filesystem"`: `fs` says what to mount; start mounts it, stop unmounts it (after a
    bounded kill of the processes using it) and the monitor checks that it is still mounted.
    A start failure, or `monitor_fall` monitor failures in a row, make the master hand over and
    stay out of mastership for `failure_timeout` seconds (0: until `vmacctl clear`).
    """

    name: str
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    timeout: float = 30.0
    monitor: tuple[str, ...] = ()          # () = no monitor (filesystem: the built-in check)
    monitor_interval: float = 10.0
    monitor_timeout: float = 5.0
    monitor_fall: int = 1
    failure_timeout: float = 60.0
    kind: str = "command"
    fs: Filesystem | None = None

    @property
    def monitored(self) -> bool:
        """A monitor runs while the resource is started."""
        return bool(self.monitor) or self.kind == "filesystem"


@dataclass(frozen=True)
class SyncGroup:
    name: str
    instances: tuple[str, ...]


@dataclass(frozen=True)
class TrackedInterface:
    name: str
    weight: int = 0                # 0: link down sends the instance to fault


@dataclass(frozen=True)
class TrackedScript:
    script: TrackScript
    weight: int = 0

    @property
    def name(self) -> str:
        return self.script.name


@dataclass(frozen=True)
class TrackedFile:
    """keepalived track_file: the file holds an integer; weight * value shifts the priority."""

    path: str
    weight: int = 1


@dataclass(frozen=True)
class Instance:
    name: str
    interface: str
    vrid: int
    virtual_ips: tuple[IPInterface, ...]
    version: int = 3
    priority: int = DEFAULT_PRIORITY
    advert_interval_cs: int = DEFAULT_INTERVAL_CS
    warn_after: float = 0.0                    # seconds; 0 disables the late-advert warning
    vmac: bool = True
    vmac_mode: str = "bridge"                  # see docs/config.md: private hides adverts
    preempt: bool = True
    preempt_delay: float = 0.0
    accept: bool = True                        # False: RFC 9568 default (drop VIP traffic)
    unicast_peers: tuple[IPAddress, ...] = ()
    auth: Auth | None = None
    garp_repeat: int = 3
    garp_refresh: float = 0.0                  # 0: no periodic refresh
    startup_delay: float = 0.0
    graceful_handover: str = "make-before-break"
    v3_checksum_pseudoheader: bool = True
    v3_checksum_strict: bool = False
    # IPv6: False sends a list without the link-local (keepalived's / FRR's usual), a departure
    ipv6_link_local_first: bool = True
    # IPv6: True drops adverts whose first address is not link-local (RFC 9568 §7.1, E8300)
    ipv6_link_local_first_strict: bool = False
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_files: tuple[TrackedFile, ...] = ()
    resources: tuple[Resource, ...] = ()
    notify: str | None = None                  # per-instance script; else Global.notify
    # keepalived's per-state scripts: argv run (without extra arguments) on entering that state
    notify_master: tuple[str, ...] = ()
    notify_backup: tuple[str, ...] = ()
    notify_fault: tuple[str, ...] = ()
    notify_stop: tuple[str, ...] = ()
    sync_group: SyncGroup | None = None

    @property
    def advert_interval(self) -> float:
        """The advertisement interval in seconds."""
        return self.advert_interval_cs / 100

    @property
    def family(self) -> int:
        """4 or 6: every VIP of an instance has the same family (9568-5.2.9-2)."""
        return self.virtual_ips[0].version

    @property
    def owner(self) -> bool:
        """Priority 255: this router owns the addresses (9568-5.2.4-1)."""
        return self.priority == OWNER_PRIORITY

    @property
    def key(self) -> tuple[str, int, int]:
        """What must be unique on a box: (interface, vrid, family)."""
        return (self.interface, self.vrid, self.family)


@dataclass(frozen=True)
class Config:
    global_: Global
    instances: tuple[Instance, ...]
    auth: tuple[Auth, ...] = ()
    track_scripts: tuple[TrackScript, ...] = ()
    resources: tuple[Resource, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    source: str = ""

    def instance(self, name: str) -> Instance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)

    @property
    def instance_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.instances)
