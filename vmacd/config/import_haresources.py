"""Heartbeat haresources -> VIPs, [resource.NAME] tables and MailTo notify scripts.

One line is a resource group: `NODE TOKEN...`, each token `NAME[::ARG...]`, started left to
right on the node that holds the group. The tokens translate as Heartbeat would have run them:

  IPaddr / IPaddr2 / IPv6addr / a bare address  -> a VIP on the interface whose subnet holds it
  Filesystem::DEV::DIR[::FSTYPE[::OPTIONS]]      -> kind = "filesystem"
  MailTo::ADDR[::SUBJECT]                        -> a notify script that mails on state changes
  SendArp                                        -> nothing: vmacd sends gratuitous ARPs itself
  NAME[::ARGS]  found as /etc/ha.d/resource.d/NAME, then /etc/init.d/NAME, then a systemd unit
                -> start / stop, with `status` as the monitor
  NAME::start   -> the service NAME (Heartbeat passed "start" as its argument)

Everything else, and every guess, is a note.
"""
from __future__ import annotations

import ipaddress
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from vmacd.config.importing import Box, GeneratedFile, IPInterface, safe_name
from vmacd.config.services import SERVICE, SYSTEMCTL, debian_names, or_list

IP_AGENTS = {"IPaddr", "IPaddr2", "IPv6addr"}
RESOURCE_D = "/etc/ha.d/resource.d"
# Heartbeat's own resource agents (shipped in /etc/ha.d/resource.d), called as AGENT ARGS... VERB
AGENTS = {"AudibleAlarm", "Delay", "Filesystem", "ICP", "IPsrcaddr", "LVM", "LinuxSCSI", "MailTo",
          "OCF", "Raid1", "SendArp", "ServeRAID", "WAS", "WinPopup", "Xinetd", "apache", "db2",
          "drbddisk", "hto-mapfuncs", "portblock"}
TIMEOUT = "30s"
MAIL = "/usr/bin/mail"


@dataclass
class Vip:
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefix: int | None          # None: not given (Heartbeat took it from the matching route)
    iface: str | None           # given in the IPaddr spec
    where: str


@dataclass
class Group:
    node: str
    lineno: int
    vips: list[Vip] = field(default_factory=list)
    resources: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    mail: list[tuple[str, str]] = field(default_factory=list)    # (addresses, subject)


def parse_haresources(lines: list[tuple[int, list[str]]], box: Box, notes: list[str]) -> list[Group]:
    """haresources as (lineno, words) -> one Group per line."""
    groups = []
    for no, words in lines:
        group = Group(words[0], no)
        for token in words[1:]:
            _token(group, token, f"haresources:{no}: {token}", box, notes)
        groups.append(group)
    return groups


def _token(group: Group, token: str, where: str, box: Box, notes: list[str]) -> None:
    name, *args = token.split("::")
    if name in IP_AGENTS:            # IPv6addr::2001:db8::10/64: the rest is one address spec
        vip = _vip(token.split("::", 1)[1] if args else "", where, notes, agent=True)
        if vip:
            group.vips.append(vip)
    elif not args and _is_address(name):
        vip = _vip(name, where, notes, agent=False)
        if vip:
            group.vips.append(vip)
    elif name == "Filesystem":
        group.resources.append(_filesystem(args, where, box, notes))
    elif name == "MailTo":
        if args:
            group.mail.append((args[0], args[1] if len(args) > 1 else "Heartbeat"))
        else:
            notes.append(f"{where}: MailTo without an address; not translated")
    elif name == "SendArp":
        notes.append(f"{where}: not translated: vmacd sends gratuitous ARPs (and IPv6 unsolicited "
                     "NAs) for every VIP from the virtual MAC on becoming master (garp_repeat)")
    else:
        group.resources.append(_command(name, args, where, box, notes))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("/", 1)[0])
    except ValueError:
        return False
    return True


def _vip(spec: str, where: str, notes: list[str], agent: bool) -> Vip | None:
    """ADDR[/PREFIX[/IFACE[/BROADCAST]]] (IPaddr's spec)."""
    parts = spec.split("/")
    try:
        addr = ipaddress.ip_address(parts[0])
    except ValueError:
        notes.append(f"{where}: unreadable address, not translated")
        return None
    prefix = None
    if len(parts) > 1 and parts[1]:
        if not (parts[1].isascii() and parts[1].isdigit()) or int(parts[1]) > addr.max_prefixlen:
            notes.append(f"{where}: unreadable prefix length {parts[1]!r}; taken from the LAN")
        else:
            prefix = int(parts[1])
    iface = parts[2].split(":", 1)[0] if len(parts) > 2 and parts[2] else None   # eth0:0 -> eth0
    if len(parts) > 3:
        notes.append(f"{where}: broadcast/label fields are not needed and not translated")
    if not agent and iface:
        notes.append(f"{where}: interface {iface} taken from the address spec")
    return Vip(addr, prefix, iface, where)


def place(vip: Vip, box: Box, notes: list[str]) -> tuple[str | None, IPInterface]:
    """The VIP's interface and address/prefix: from the spec, else from this box's subnets.
    (None, ADDR/max) when neither knows: the caller writes a placeholder."""
    nets = sorted(((i, n.network) for i, n in box.networks()
                   if vip.addr in n.network and n.network.prefixlen < vip.addr.max_prefixlen),
                  key=lambda x: -x[1].prefixlen)
    own = sorted({i for i, n in box.networks() if n.ip == vip.addr})
    if own:
        notes.append(f"{vip.where}: {vip.addr} is an address of {', '.join(own)} on this box right now "
                     "(Heartbeat still holding it?); stop Heartbeat and remove it before vmacd starts, "
                     "or preflight sees this box as the address owner (priority 255)")
    usable = [x for x in nets if x[0] == vip.iface] if vip.iface else nets
    if vip.iface and nets and not usable:
        notes.append(f"{vip.where}: the spec names {vip.iface}, but on this box {vip.addr} lies in "
                     f"the subnet of {nets[0][0]} ({nets[0][1]}); {vip.iface} kept")
    iface = vip.iface or (usable[0][0] if usable else None)
    prefix = vip.prefix
    if usable:
        others = sorted({i for i, n in usable if n == usable[0][1]} - {iface})
        also = f" (also on {', '.join(others)}: check which one is the service LAN)" if others else ""
        text = f"{vip.where}: on {iface}, whose subnet {usable[0][1]} holds it{also}"
        if prefix is None:
            prefix = usable[0][1].prefixlen
            text += f"; /{prefix} as on that LAN (Heartbeat took the prefix from the route)"
        notes.append(text)
    elif prefix is None and not box.offline and iface:
        notes.append(f"{vip.where}: no prefix length and no subnet of {iface} on this box holds "
                     f"it: /{vip.addr.max_prefixlen} written; give the LAN's prefix (e.g. /24)")
    if prefix is None:
        prefix = vip.addr.max_prefixlen
    return iface, ipaddress.ip_interface(f"{vip.addr}/{prefix}")


def _filesystem(args: list[str], where: str, box: Box, notes: list[str]) -> tuple[str, dict[str, Any]]:
    if len(args) < 2:
        notes.append(f"{where}: Filesystem needs DEVICE::DIRECTORY; called as the agent")
        return _agent("Filesystem", args, where, box, notes)
    device = args[0]
    if device.startswith("-L"):
        device = "LABEL=" + device[2:]
    elif device.startswith("-U"):
        device = "UUID=" + device[2:]
    table: dict[str, Any] = {"kind": "filesystem", "device": device, "mountpoint": args[1]}
    if len(args) > 2 and args[2]:
        table["fstype"] = args[2]
    if len(args) > 3 and args[3]:
        table["options"] = args[3]
    if len(args) > 4:
        notes.append(f"{where}: fields after the options are not translated")
    table["timeout"] = TIMEOUT
    notes.append(f"{where}: a kind = \"filesystem\" resource: vmacd mounts it on becoming master, "
                 "unmounts it on leaving and checks that it stays mounted")
    return "fs-" + (safe_name(args[1].strip("/").replace("/", "_")) or "root"), table


def _agent(name: str, args: list[str], where: str, box: Box,
           notes: list[str]) -> tuple[str, dict[str, Any]]:
    found = box.service(name)
    found = found if found and found.kind == "agent" else None
    script = found.path if found else f"{RESOURCE_D}/{name}"
    if found is None:
        notes.append(f"{where}: needs the Heartbeat resource agent {script}, "
                     + ("not looked up (offline)" if box.offline else "not found on this box")
                     + ": install it (drbddisk comes with drbd-utils) or replace the commands")
    else:
        notes.append(f"{where}: the Heartbeat resource agent {script}: called with start, stop "
                     "and status (the monitor)")
    table = {"start": [script, *args, "start"], "stop": [script, *args, "stop"],
             "monitor": [script, *args, "status"], "timeout": TIMEOUT}
    return _name(name, args), table


def _name(name: str, args: list[str]) -> str:
    return safe_name(name if not args else f"{name}-{args[0]}")


def _command(name: str, args: list[str], where: str, box: Box,
             notes: list[str]) -> tuple[str, dict[str, Any]]:
    if args == ["start"]:
        notes.append(f"{where}: the service {name} (Heartbeat passed 'start' as its argument)")
        args = []
    found = box.service(name)
    if name in AGENTS or (found and found.kind == "agent"):
        return _agent(name, args, where, box, notes)
    if found and found.kind == "lsb":
        notes.append(f"{where}: the init script {found.path}: start, stop, and status as the monitor")
        return safe_name(name), {"start": [found.path, *args, "start"], "stop": [found.path, *args, "stop"],
                                 "monitor": [found.path, *args, "status"], "timeout": TIMEOUT}
    if args:
        notes.append(f"{where}: arguments {' '.join(args)} not passed: a service takes none here")
    if found:
        notes.append(f"{where}: the systemd unit {found.name} ({found.path}): systemctl start/stop, "
                     "and systemctl is-active as the monitor")
        return safe_name(name), {"start": [SYSTEMCTL, "start", found.name],
                                 "stop": [SYSTEMCTL, "stop", found.name],
                                 "monitor": [SYSTEMCTL, "is-active", "--quiet", found.name],
                                 "timeout": TIMEOUT}
    notes.append(_missing(name, where, box))
    return safe_name(name), {"start": [SERVICE, name, "start"], "stop": [SERVICE, name, "stop"],
                             "monitor": [SERVICE, name, "status"], "timeout": TIMEOUT}


def _missing(name: str, where: str, box: Box) -> str:
    if box.offline:
        return (f"{where}: written as the service {name} ({SERVICE} {name} start|stop|status), not "
                "looked up (offline): run vmacd check on the target box")
    text = (f"{where}: no service {name} on this box (no {RESOURCE_D}/{name}, /etc/init.d/{name} "
            f"or {name}.service)")
    alt = debian_names(name)
    if alt:
        here = [n for n in alt if box.service(n)]
        text += f"; on Debian it is {or_list(alt)}" + (f" (here: {', '.join(here)})" if here else "")
    return text + f": change the start, stop and monitor commands of [resource.{safe_name(name)}]"


def mail_script(group: Group, instance: str, path: str, mail: str = MAIL) -> GeneratedFile:
    """A notify script mailing what Heartbeat's MailTo mailed: takeover and release."""
    tos = " ".join(shlex.quote(a) for addrs, _ in group.mail for a in addrs.split(",") if a)
    subject = shlex.quote(group.mail[0][1])
    text = f"""#!/bin/sh
# vmacd notify script for instance {instance}, translated from Heartbeat's MailTo
# (haresources line {group.lineno}). vmacd runs it as: SCRIPT TYPE NAME STATE PRIORITY
# on every state change; it mails as MailTo did on takeover and release. Needs {mail}
# (apt-get install bsd-mailx).
case "$3" in
    MASTER) what="takeover" ;;
    *) what="not master ($3)" ;;
esac
printf '%s %s on %s: %s, priority %s\\n' "$1" "$2" "$(uname -n)" "$3" "$4" |
    {mail} -s {subject}": $what on $(uname -n)" -- {tos}
"""
    return GeneratedFile(path, text, 0o755, f"notify script (MailTo) of instance {instance}")


def mail_path(files_dir: str, instance: str) -> str:
    return os.path.join(files_dir, f"mailto-{instance}.sh")
