"""Preflight: does this box suit the config? (`vmacd check`, and the daemon before it starts)

Everything the loader cannot know without the system: interfaces, carrier, raw sockets, macvlan,
the ARP/rp_filter sysctls of the parents, which VIPs are the box's own addresses (the owner rule
of RFC 9568 §5.2.4), whether the commands the config names exist, and whether the services they
start (`service NAME`, `systemctl VERB UNIT`, `/etc/init.d/NAME`) exist on this box.
`advice()` holds the rules that need no system (also run by `vmacd check --no-preflight`).

The system is read through the small `System` interface so the rules can be tested with a fake;
`LinuxSystem` is the real one (netifaces, /proc/sys, /sys/class/net, socket()).
"""
from __future__ import annotations

import errno
import glob
import ipaddress
import os
import shutil
import socket
from dataclasses import dataclass
from typing import Protocol

import netifaces

from vmacd.config import model
from vmacd.config.importing import PLACEHOLDER_IFACE
from vmacd.config.services import INIT_D, controlled_service, debian_names, or_list

ERROR = "error"
WARNING = "warning"
VRRP_PROTO = 112
# wanted values for a parent carrying vMAC macvlans (IPv4): answer ARP only for addresses of the
# receiving device (so the parent does not answer for a VIP with its own MAC), announce from the
# best local source, and no strict reverse-path filter (replies leave by the macvlan).
WANT_ARP_IGNORE = 1
WANT_ARP_ANNOUNCE = 2


@dataclass(frozen=True)
class Finding:
    severity: str      # error | warning
    path: str          # key path in the config, e.g. instance[lan].interface, or "system"
    message: str

    def render(self, source: str) -> str:
        return f"{source}: {self.path}: {self.severity}: {self.message}"


class System(Protocol):
    def interfaces(self) -> list[str]: ...
    def addresses(self, ifname: str) -> list[model.IPAddress]: ...
    def carrier(self, ifname: str) -> bool | None: ...
    def wireless(self, ifname: str) -> bool: ...
    def sysctl(self, name: str) -> str | None: ...
    def raw_socket(self, family: int) -> str | None: ...
    def macvlan(self) -> bool | None: ...
    def executable(self, command: str) -> bool: ...
    def exists(self, path: str) -> bool: ...
    def service(self, name: str) -> str | None: ...


class LinuxSystem:
    """The running kernel, read-only: preflight changes nothing on the box."""

    def interfaces(self) -> list[str]:
        return list(netifaces.interfaces())

    def addresses(self, ifname: str) -> list[model.IPAddress]:
        out: list[model.IPAddress] = []
        info = netifaces.ifaddresses(ifname)
        for fam in (netifaces.AF_INET, netifaces.AF_INET6):
            for entry in info.get(fam, []):
                try:
                    out.append(ipaddress.ip_address(entry["addr"].split("%", 1)[0]))
                except (KeyError, ValueError):
                    continue
        return out

    def carrier(self, ifname: str) -> bool | None:
        text = _read(f"/sys/class/net/{ifname}/carrier")
        return None if text is None else text == "1"

    def wireless(self, ifname: str) -> bool:
        return os.path.isdir(f"/sys/class/net/{ifname}/wireless")

    def sysctl(self, name: str) -> str | None:
        return _read(f"/proc/sys/{name}")

    def raw_socket(self, family: int) -> str | None:
        try:
            socket.socket(family, socket.SOCK_RAW, VRRP_PROTO).close()
        except OSError as exc:
            hint = " (run as root or grant CAP_NET_RAW)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            return f"{exc.strerror}{hint}"
        return None

    def macvlan(self) -> bool | None:
        if os.path.isdir("/sys/module/macvlan"):
            return True
        release = os.uname().release
        builtin = _read(f"/lib/modules/{release}/modules.builtin") or ""
        if "/macvlan.ko" in builtin or glob.glob(f"/lib/modules/{release}/**/macvlan.ko*", recursive=True):
            return True
        return None    # cannot tell (containers often have no /lib/modules)

    def executable(self, command: str) -> bool:
        if "/" in command:
            return os.path.isfile(command) and os.access(command, os.X_OK)
        return shutil.which(command) is not None

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def service(self, name: str) -> str | None:
        """Where the init script or systemd unit `name` is; None when the box has neither."""
        from vmacd.linux.discover import LocalBox
        found = LocalBox().service(name, agents=False)
        return found.path if found else None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def preflight(config: model.Config, system: System | None = None) -> list[Finding]:
    """Every finding for `config` on this box (or on `system`), errors and warnings, in order."""
    system = system or LinuxSystem()
    found: list[Finding] = []
    families = {inst.family for inst in config.instances}
    for fam, name in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        if fam in families:
            problem = system.raw_socket(name)
            if problem:
                found.append(Finding(ERROR, "system", f"cannot open an IPv{fam} raw socket for "
                                                      f"protocol 112: {problem}"))
    if any(i.vmac for i in config.instances) and system.macvlan() is not True:
        found.append(Finding(WARNING, "system", "cannot confirm macvlan support in this kernel "
                                                "(no macvlan module found); vmac = true needs it"))
    versions = {i.version for i in config.instances}
    if versions == {2, 3}:
        found.append(Finding(WARNING, "instance", "both VRRPv2 and VRRPv3 instances: run mixed v2/v3 only "
                                                  "while migrating (RFC 9568 §8.4.2)"))
    known = set(system.interfaces())
    for inst in config.instances:
        found.extend(_instance(inst, system, known))
    found.extend(_commands(config, system))
    found.extend(advice(config))
    return found


def advice(config: model.Config) -> list[Finding]:
    """Warnings about the config itself, whatever the box."""
    out = []
    for inst in config.instances:
        if not inst.accept and (inst.resources or inst.track_scripts):
            out.append(Finding(WARNING, f"instance[{inst.name}].accept",
                               "false: as master this router drops traffic addressed to the VIPs "
                               "(the RFC 9568 default), so the service it runs or tracks is not "
                               "reachable through them; set accept = true (the default)"))
    return out


def _instance(inst: model.Instance, system: System, known: set[str]) -> list[Finding]:
    at = f"instance[{inst.name}]"
    if inst.interface not in known:
        hint = (": the importer's placeholder; write the interface of the LAN that holds the VIPs"
                if inst.interface == PLACEHOLDER_IFACE else "")
        return [Finding(ERROR, f"{at}.interface", f"interface {inst.interface} does not exist{hint}")]
    out = []
    if system.carrier(inst.interface) is False:
        out.append(Finding(WARNING, f"{at}.interface", f"{inst.interface} has no carrier (link down): "
                                                       "the instance starts in fault"))
    if inst.vmac and system.wireless(inst.interface):
        out.append(Finding(WARNING, f"{at}.vmac", f"{inst.interface} is wireless: access points drop "
                                                  "frames from a second MAC; consider vmac = false"))
    out.extend(_owner(inst, at, system.addresses(inst.interface)))
    if inst.family == 4 and inst.vmac:
        out.extend(_sysctls(inst, at, system))
    if inst.family == 6:
        out.extend(_ipv6(inst, at, system))
    for i, tracked in enumerate(inst.track_interfaces):
        if tracked.name not in known:
            out.append(Finding(WARNING, f"{at}.track_interfaces[{i}]",
                               f"interface {tracked.name} does not exist (counts as down)"))
    for i, tracked_file in enumerate(inst.track_files):
        if not system.exists(tracked_file.path):
            out.append(Finding(WARNING, f"{at}.track_files[{i}]",
                               f"{tracked_file.path} does not exist (counts as 0 until created)"))
    return out


def _owner(inst: model.Instance, at: str, own: list[model.IPAddress]) -> list[Finding]:
    """RFC 9568 §5.2.4: the owner of a VIP sends 255; nobody else may (9568-5.2.4-1/-2)."""
    owned = [str(v.ip) for v in inst.virtual_ips if v.ip in own]
    if owned and not inst.owner:
        return [Finding(ERROR, f"{at}.priority",
                        f"{', '.join(owned)} is an address of {inst.interface}, so this router owns "
                        f"it and must use priority = 255 (RFC 9568 §5.2.4), got {inst.priority}")]
    if inst.owner and not owned:
        return [Finding(ERROR, f"{at}.priority",
                        f"priority 255 is for the address owner, but no VIP is an address of "
                        f"{inst.interface}; use 1..254 (RFC 9568 §5.2.4), got 255")]
    out = []
    if inst.owner and not inst.preempt:
        out.append(Finding(WARNING, f"{at}.preempt", "ignored: the address owner always preempts "
                                                     "(RFC 9568 §6.1)"))
    if inst.owner and inst.vmac:
        out.append(Finding(WARNING, f"{at}.vmac", f"the owned address stays on {inst.interface}: "
                                                  "vmacd filters the parent's own ARP/NA for it while "
                                                  "it runs, but once it stops the kernel answers with "
                                                  "the physical MAC while a backup holds the address "
                                                  "(RFC 9568 §8.1.2, §8.2.2)"))
    return out


def _sysctls(inst: model.Instance, at: str, system: System) -> list[Finding]:
    def value(key: str, ifname: str) -> int | None:
        text = system.sysctl(f"net/ipv4/conf/{ifname}/{key}")
        return int(text) if text is not None and text.lstrip("-").isdigit() else None

    def effective(key: str) -> int | None:   # the kernel uses max(all, dev) for these three
        vals = [v for v in (value(key, "all"), value(key, inst.interface)) if v is not None]
        return max(vals) if vals else None

    out = []
    note = ("vmacd sets it at run time; to set it for good see the sysctl.d example "
            "(appliance/sysctl.d, or /usr/share/doc/vmacd/examples/sysctl.d from the Debian package)")
    ignore, announce, rp = effective("arp_ignore"), effective("arp_announce"), effective("rp_filter")
    if ignore is not None and ignore < WANT_ARP_IGNORE:
        out.append(Finding(WARNING, f"{at}.interface", f"arp_ignore on {inst.interface} is {ignore}: the "
                                                       "parent answers ARP for the VIPs with its own MAC; "
                                                       f"want {WANT_ARP_IGNORE} ({note})"))
    if announce is not None and announce < WANT_ARP_ANNOUNCE:
        out.append(Finding(WARNING, f"{at}.interface", f"arp_announce on {inst.interface} is {announce}: "
                                                       "ARP requests may carry a VIP as source; want "
                                                       f"{WANT_ARP_ANNOUNCE} ({note})"))
    if rp == 1:
        out.append(Finding(WARNING, f"{at}.interface", f"rp_filter on {inst.interface} is 1 (strict): "
                                                       "replies through the vMAC device can be dropped; "
                                                       f"want 0 or 2 ({note})"))
    return out


def _ipv6(inst: model.Instance, at: str, system: System) -> list[Finding]:
    if system.sysctl(f"net/ipv6/conf/{inst.interface}/disable_ipv6") == "1":
        return [Finding(ERROR, f"{at}.interface", f"IPv6 is disabled on {inst.interface}")]
    if not any(a.version == 6 and a.is_link_local for a in system.addresses(inst.interface)):
        return [Finding(ERROR, f"{at}.interface", f"{inst.interface} has no IPv6 link-local address: "
                                                  "advertisements must be sent from one (RFC 9568 §5.1.2.1)")]
    return []


def _commands(config: model.Config, system: System) -> list[Finding]:
    out = []
    for path, argv in _argvs(config):
        out.extend(_command(path, argv, system))
    return out


def _argvs(config: model.Config) -> list[tuple[str, tuple[str, ...]]]:
    """Every command of the config, with its key path."""
    out: list[tuple[str, tuple[str, ...]]] = []
    if config.global_.notify:
        out.append(("global.notify", (config.global_.notify,)))
    out += [(f"track_script.{s.name}.command", s.command) for s in config.track_scripts]
    for res in config.resources:
        out += [(f"resource.{res.name}.{key}", getattr(res, key))
                for key in ("start", "stop", "monitor") if getattr(res, key)]
    for inst in config.instances:
        if inst.notify:
            out.append((f"instance[{inst.name}].notify", (inst.notify,)))
        out += [(f"instance[{inst.name}].{key}", getattr(inst, key))
                for key in ("notify_master", "notify_backup", "notify_fault", "notify_stop")
                if getattr(inst, key)]
    return out


def _command(path: str, argv: tuple[str, ...], system: System) -> list[Finding]:
    """The program exists and is executable; a service it starts or stops exists."""
    name = controlled_service(argv)
    init_script = os.path.dirname(argv[0]) == INIT_D
    if not system.executable(argv[0]):
        if init_script:
            why = f"no init script {argv[0]}: service {name} does not exist on this box"
        elif "/" in argv[0]:
            why = f"{argv[0]} is not an executable file"
        else:
            why = f"{argv[0]} is not an executable found in PATH"
        return [Finding(ERROR, path, why + (_alternatives(name, system) if init_script else ""))]
    if name and not init_script and system.service(name) is None:
        unit = name if "." in name else f"{name}.service"
        return [Finding(ERROR, path, f"service {name} does not exist on this box (no "
                                     f"{INIT_D}/{name.removesuffix('.service')}, no {unit} unit)"
                                     + _alternatives(name, system))]
    return []


def _alternatives(name: str | None, system: System) -> str:
    alt = debian_names(name or "")
    if not alt:
        return ""
    here = [n for n in alt if system.service(n)]
    return f"; on Debian it is {or_list(alt)}" + (f" (here: {', '.join(here)})" if here else "")
