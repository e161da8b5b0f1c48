"""Read-only discovery of this box for the importers and preflight: subnets and services.

`LocalBox.networks()` lists every address of every interface with its prefix (netifaces), so an
importer can put an instance on the interface whose subnet holds the VIP. `LocalBox.service()`
finds a service the way Heartbeat did: a resource agent in /etc/ha.d/resource.d, then an LSB
script in /etc/init.d, then a systemd unit file. Nothing here changes the box.
"""
from __future__ import annotations

import ipaddress
import os
import socket

import netifaces

from vmacd.config.importing import IPInterface, Service

RESOURCE_D = "etc/ha.d/resource.d"
INIT_D = "etc/init.d"
# systemd's unit search path for system units, most specific first
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system",
             "lib/systemd/system", "usr/lib/systemd/system")
_UNIT_SUFFIXES = (".service", ".socket", ".mount", ".target", ".timer", ".path", ".scope")


class LocalBox:
    """This machine. `root` moves the file lookups below another directory (for tests)."""

    offline = False

    def __init__(self, root: str = "/") -> None:
        self.root = root

    def networks(self) -> list[tuple[str, IPInterface]]:
        out = []
        for ifname in netifaces.interfaces():
            info = netifaces.ifaddresses(ifname)
            for fam in (netifaces.AF_INET, netifaces.AF_INET6):
                for entry in info.get(fam, []):
                    net = _interface(entry)
                    if net is not None:
                        out.append((ifname, net))
        return out

    def service(self, name: str, agents: bool = True) -> Service | None:
        """`agents=False`: only what `service NAME` can run (an init script or a unit)."""
        if "/" in name or name in ("", ".", ".."):
            return None
        for kind, where in (("agent", RESOURCE_D), ("lsb", INIT_D))[0 if agents else 1:]:
            path = os.path.join(self.root, where, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return Service(kind, name, "/" + os.path.join(where, name))
        return self.unit(name)

    def unit(self, name: str) -> Service | None:
        """A systemd unit file for `name` (".service" assumed without a suffix); a masked unit
        (a link to /dev/null) does not count."""
        unit = name if name.endswith(_UNIT_SUFFIXES) else f"{name}.service"
        for where in UNIT_DIRS:
            path = os.path.join(self.root, where, unit)
            if os.path.lexists(path):
                if os.path.realpath(path) == "/dev/null":
                    return None
                if os.path.exists(path):
                    return Service("systemd", unit, "/" + os.path.join(where, unit))
        return None

    def hostname(self) -> str | None:
        return socket.gethostname() or None


def _interface(entry: dict[str, str]) -> IPInterface | None:
    """One netifaces address entry -> address/prefix; None when unreadable."""
    addr = entry.get("addr", "").split("%", 1)[0]
    mask = entry.get("netmask", "")
    if "/" in mask:                        # IPv6: "ffff:ffff:ffff:ffff::/64"
        mask = mask.rsplit("/", 1)[1]
    try:
        return ipaddress.ip_interface(f"{addr}/{mask}") if mask else ipaddress.ip_interface(addr)
    except ValueError:
        return None
