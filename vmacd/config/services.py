"""Which system service a command controls, and what Heartbeat-era service names are on Debian.

`controlled_service(argv)` reads the three usual forms: `service NAME VERB`, `systemctl VERB
UNIT...` and `/etc/init.d/NAME VERB`. `debian_names(name)` lists the Debian services that stand
for a name from a Red Hat era config (Heartbeat's own examples use `httpd`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

INIT_D = "/etc/init.d"
SERVICE = "/usr/sbin/service"
SYSTEMCTL = "/usr/bin/systemctl"
# systemctl verbs whose arguments are unit names
_UNIT_VERBS = {"start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
               "try-reload-or-restart", "condrestart", "status", "is-active", "is-failed", "kill"}
_DEBIAN = {
    "httpd": ("apache2", "lighttpd", "nginx"),
    "apache": ("apache2",),
    "mysqld": ("mariadb", "mysql"),
    "mysql": ("mariadb",),
    "named": ("named", "bind9"),
    "smb": ("smbd",),
    "nmb": ("nmbd",),
    "nfs": ("nfs-kernel-server",),
    "nfsserver": ("nfs-kernel-server",),
    "dhcpd": ("isc-dhcp-server",),
    "sshd": ("ssh",),
    "crond": ("cron",),
    "ntpd": ("ntpsec", "chrony"),
    "postgresql-server": ("postgresql",),
}


def controlled_service(argv: Sequence[str]) -> str | None:
    """The service or unit `argv` starts, stops or queries; None for any other command."""
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    words = [a for a in argv[1:] if not a.startswith("-")]
    if prog == "service" and words:
        return words[0]
    if prog == "systemctl" and len(words) >= 2 and words[0] in _UNIT_VERBS:
        return words[1]
    if os.path.dirname(argv[0]) == INIT_D and prog:
        return prog
    return None


def debian_names(name: str) -> tuple[str, ...]:
    """Debian's names for the service `name` (empty when there is no usual replacement)."""
    base = name.removesuffix(".service")
    return tuple(n for n in _DEBIAN.get(base, ()) if n != base)


def or_list(names: Sequence[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
