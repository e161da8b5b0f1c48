"""What the importers share: the result type, the view of the box, names and command lines.

An importer is pure: it reads texts and asks a `Box` about the machine it runs on (which subnet
each interface holds, which services exist). The real box is `vmacd.linux.discover.LocalBox`;
`OfflineBox` answers nothing, for a config written for another machine. The CLI decides where the
result goes (stdout, or `-o FILE` with key files and generated scripts beside it).
"""
from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Protocol

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# the interface written when the VIP's LAN is unknown: a valid name that no box has by accident
PLACEHOLDER_IFACE = "CHANGE-ME"
SH = "/bin/sh"
# characters with a meaning to /bin/sh: redirections, pipes, lists, expansions, quotes, globs
_SHELL = re.compile(r"""[<>|&;$`'"\\*?\[\](){}~!#\n]""")


class Unusable(Exception):
    """The call cannot be served (e.g. --node names no node of ha.cf): exit 2 with this message."""


@dataclass(frozen=True)
class GeneratedFile:
    """A file the translated config refers to (a notify script): written beside `-o FILE`."""

    path: str
    content: str
    mode: int
    purpose: str


@dataclass
class Imported:
    """The TOML document (plain dicts), the notes for the user and the files it refers to."""

    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: list[GeneratedFile] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)      # placeholders to replace before use


@dataclass(frozen=True)
class Service:
    """A service found on the box: how Heartbeat would have called it."""

    kind: str      # agent (/etc/ha.d/resource.d) | lsb (/etc/init.d) | systemd (a unit file)
    name: str      # the script name, or the unit name with its suffix ("nginx.service")
    path: str      # where it was found


class Box(Protocol):
    """The machine the importer runs on, read-only."""

    offline: bool

    def networks(self) -> list[tuple[str, IPInterface]]: ...
    def service(self, name: str) -> Service | None: ...
    def hostname(self) -> str | None: ...


class OfflineBox:
    """No machine to ask: interfaces and services are left for the user to fill in."""

    offline = True

    def networks(self) -> list[tuple[str, IPInterface]]:
        return []

    def service(self, name: str) -> Service | None:
        return None

    def hostname(self) -> str | None:
        return None


def safe_name(name: str) -> str:
    """A table/instance name vmacd accepts (letters, digits, _ . -; at most 32)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(name)).lstrip("_.-") or "res"
    return safe[:32]


def unique_name(base: str, taken: set[str] | dict[str, Any]) -> str:
    name, n = safe_name(base), 2
    while name in taken:
        suffix = f"-{n}"
        name, n = safe_name(base)[:32 - len(suffix)] + suffix, n + 1
    return name


def is_shell(text: str) -> bool:
    """Does this command line need a shell (redirections, pipes, &&, $, quotes, globs)?"""
    return bool(_SHELL.search(text))


def command(text: str, where: str, notes: list[str], absolute: bool = False) -> list[str]:
    """A command line as keepalived or a script wrote it -> an argv vmacd runs without a shell.

    Plain words are split as the shell would; anything the shell would interpret becomes
    `/bin/sh -c TEXT`, with a note. `absolute`: the program must be an absolute path (notify
    keys); a bare name then goes through the shell too, which looks it up in PATH.
    """
    if is_shell(text):
        notes.append(f"{where}: shell syntax in {text!r}: run as [\"{SH}\", \"-c\", ...] "
                     "(vmacd runs commands without a shell)")
        return [SH, "-c", text]
    argv = shlex.split(text)
    if absolute and argv and not argv[0].startswith("/"):
        notes.append(f"{where}: {argv[0]} is not an absolute path: run through {SH} -c, "
                     "which looks it up in PATH; write the full path to avoid the shell")
        return [SH, "-c", text]
    return argv
