"""Netlink (pyroute2): the vMAC macvlan devices, the virtual IPs, and a non-polling link watch.

What vmacd creates is marked so a restarted daemon can tell it apart from the operator's work:
- a vMAC macvlan carries the interface alias ``vmacd:<instance>`` (IFLA_IFALIAS);
- every virtual IP vmacd adds carries the address protocol ``VIP_PROTO`` (IFA_PROTO, Linux 6.1+).
`VmacManager.adopt_or_clean()` uses both after a crash. See docs/linux.md for the design.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from vmacd.linux import sysctl as _sysctl

ALIAS_PREFIX = "vmacd:"
VIP_PROTO = 112            # IFA_PROTO of every VIP vmacd adds (the VRRP protocol number)
MODES = ("private", "bridge")
DEFAULT_MODE = "private"   # see docs/linux.md "macvlan mode"
IFA_F_NODAD = 0x02
IFA_F_NOPREFIXROUTE = 0x200
IN6_ADDR_GEN_MODE_NONE = 1
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR, RTM_DELADDR = 20, 21
IFF_UP = 0x1
IFNAMSIZ = 15


class LinkError(Exception):
    """A netlink operation failed in a way a user can act on; the message says what and where."""


@dataclass(frozen=True)
class Vmac:
    """One vMAC macvlan device that vmacd owns."""

    instance: str
    ifname: str
    ifindex: int
    parent: str
    parent_ifindex: int
    vrid: int
    family: int        # 4 | 6
    mac: str
    mode: str


@dataclass(frozen=True)
class LinkChanged:
    """A link went up or down (up = admin up and carrier), or disappeared (`deleted`)."""

    ifindex: int
    ifname: str
    up: bool
    deleted: bool = False


@dataclass(frozen=True)
class AddressesChanged:
    """An address was added to or removed from `ifindex` (one event per interface per read)."""

    ifindex: int


@dataclass(frozen=True)
class Leftover:
    """What `adopt_or_clean` found from an earlier run and what it did with it."""

    kind: str          # "macvlan" | "vip"
    ifname: str
    ifindex: int
    instance: str      # "" for VIPs (the address carries no instance name)
    action: str        # "adopted" | "deleted" | "removed"
    address: str = ""


def vmac_address(vrid: int, family: int) -> str:
    """RFC 9568 §7.3: 00:00:5e:00:01:VRID for IPv4, 00:00:5e:00:02:VRID for IPv6."""
    if not 1 <= vrid <= 255 or family not in (4, 6):
        raise ValueError(f"bad vrid/family {vrid}/{family}")
    return f"00:00:5e:00:{1 if family == 4 else 2:02x}:{vrid:02x}"


def vmac_ifname(vrid: int, family: int, parent: str | None = None) -> str:
    """Default device name: ``vmac<vrid>.<4|6>``; with `parent` (the same VRID on several LANs)
    ``<parent[:8]>.<vrid>.<4|6>``. Both fit IFNAMSIZ (15)."""
    if parent is None:
        return f"vmac{vrid}.{family}"
    return f"{parent[:8]}.{vrid}.{family}"


def _err(what: str, exc: NetlinkError) -> LinkError:
    return LinkError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc} (errno {exc.code})")


class VmacManager:
    """Creates, claims, releases and cleans vMAC macvlans and VIPs in the current netns."""

    def __init__(self, ipr: IPRoute | None = None) -> None:
        self.ipr = ipr or IPRoute()
        self._covered: dict = {}      # VIP interface -> an operator address routes its prefix

    def close(self) -> None:
        """Close the netlink socket."""
        self.ipr.close()

    # ---- lookups -------------------------------------------------------------------------
    def ifindex(self, ifname: str) -> int:
        """Index of `ifname`; LinkError naming the interface when it does not exist."""
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise LinkError(f"interface {ifname!r} does not exist")
        return int(found[0])

    def _exists(self, ifindex: int) -> bool:
        try:
            self.ipr.get_links(ifindex)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise _err(f"looking up ifindex {ifindex}", exc) from None
        return True

    def is_up(self, ifindex: int) -> bool:
        """Admin up and carrier."""
        msg = self.ipr.get_links(ifindex)[0]
        return bool(msg["flags"] & IFF_UP) and msg.get("IFLA_CARRIER") == 1

    def admin_up(self, ifindex: int) -> bool:
        """Administratively up (IFF_UP), whatever the carrier."""
        return bool(self.ipr.get_links(ifindex)[0]["flags"] & IFF_UP)

    def primary_address(self, ifindex: int, family: int) -> str | None:
        """The first IPv4 address (family 4) or the link-local (family 6) that is not ours."""
        fam = socket.AF_INET if family == 4 else socket.AF_INET6
        for msg in self.ipr.get_addr(index=ifindex, family=fam):
            if msg.get("IFA_PROTO") == VIP_PROTO:
                continue
            addr = msg.get("IFA_ADDRESS")
            if family == 4 or ipaddress.IPv6Address(addr).is_link_local:
                return str(addr)
        return None

    # ---- creation ------------------------------------------------------------------------
    def create(self, instance: str, parent: str, vrid: int, family: int,
               mode: str = DEFAULT_MODE, ifname: str | None = None) -> Vmac:
        """Create (or re-create) the DOWN vMAC macvlan of `instance` on `parent`.

        A device of the same name that vmacd made for this instance is deleted first; a device of
        that name made by anyone else is refused with LinkError.
        """
        if mode not in MODES:
            raise LinkError(f"macvlan mode must be one of {', '.join(MODES)}, got {mode!r}")
        name = ifname or vmac_ifname(vrid, family)
        if len(name) > IFNAMSIZ:
            raise LinkError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
        parent_idx = self.ifindex(parent)
        mac = vmac_address(vrid, family)
        existing = self.ipr.link_lookup(ifname=name)
        if existing:
            alias = self.ipr.get_links(existing[0])[0].get("IFLA_IFALIAS") or ""
            if alias != ALIAS_PREFIX + instance:
                raise LinkError(f"interface {name!r} exists and was not made by vmacd for "
                                f"instance {instance!r} (alias {alias!r}); remove or rename it")
            self.ipr.link("del", index=existing[0])
        try:
            self.ipr.link("add", ifname=name, kind="macvlan", link=parent_idx,
                          macvlan_mode=mode, address=mac, state="down")
        except NetlinkError as exc:
            raise _err(f"creating macvlan {name} on {parent}", exc) from None
        idx = self.ifindex(name)
        self._prepare(idx, name, instance, family)
        return Vmac(instance, name, idx, parent, parent_idx, vrid, family, mac, mode)

    def _prepare(self, idx: int, name: str, instance: str, family: int) -> None:
        """Mark the device ours and make it silent before it is ever up (RFC 9568 7.4-1)."""
        self.ipr.link("set", index=idx, ifalias=ALIAS_PREFIX + instance)
        self.ipr.link("set", index=idx, IFLA_AF_SPEC={"attrs": [
            ("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE)]})]})
        _sysctl.prepare_vmac(name, family)

    def delete(self, vmac: Vmac) -> None:
        """Delete the macvlan (its VIPs go with it). Missing device: nothing to do."""
        try:
            self.ipr.link("del", index=vmac.ifindex)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise _err(f"deleting {vmac.ifname}", exc) from None

    # ---- claim / release ----------------------------------------------------------------
    def claim(self, target: Vmac | int, vips: list[str]) -> None:
        """Become master: bring the vMAC up (Vmac) and add the VIPs (IPv6 with nodad).

        `target` an ifindex: vmac=false mode, the VIPs go on that (parent) interface whose
        state is left alone. Adding a VIP that is already there is not an error.
        """
        idx = target.ifindex if isinstance(target, Vmac) else target
        if isinstance(target, Vmac):
            self._set_state(idx, "up")
        self.add_vips(idx, vips)

    def add_vips(self, target: Vmac | int, vips: list[str]) -> None:
        """Add the VIPs (IPv6 nodad); already present is not an error."""
        idx = target.ifindex if isinstance(target, Vmac) else target
        for vip in vips:
            self._add_vip(idx, vip)

    def prepare_vips(self, vips: list[str]) -> None:
        """Decide `noprefixroute` for these VIPs now (an address dump), not at takeover time."""
        for vip in vips:
            iface = ipaddress.ip_interface(vip)
            self._covered[iface] = self._prefix_covered(iface)

    def release(self, target: Vmac | int, vips: list[str] | None = None) -> None:
        """Leave master: remove the VIPs vmacd added, then take the vMAC down (Vmac).

        On a parent (vmac = false) pass the instance's own `vips`: other instances may keep
        theirs on the same interface."""
        idx = target.ifindex if isinstance(target, Vmac) else target
        self.remove_vips(idx, only=vips)
        if isinstance(target, Vmac):
            try:
                self._set_state(idx, "down")
            except LinkError:
                if self._exists(idx):
                    raise              # a vMAC that went away with its parent is down enough

    def set_down(self, ifindex: int) -> None:
        """Take a link down (used by the guardian and on adoption)."""
        self._set_state(ifindex, "down")

    def _set_state(self, idx: int, state: str) -> None:
        try:
            self.ipr.link("set", index=idx, state=state)
        except NetlinkError as exc:
            raise _err(f"setting ifindex {idx} {state}", exc) from None

    def _add_vip(self, idx: int, vip: str) -> None:
        iface = ipaddress.ip_interface(vip)
        flags = IFA_F_NODAD if iface.version == 6 else 0
        covered = self._covered.get(iface)
        if covered if covered is not None else self._prefix_covered(iface):
            flags |= IFA_F_NOPREFIXROUTE
        try:
            self.ipr.addr("add", index=idx, address=str(iface.ip),
                          prefixlen=iface.network.prefixlen, flags=flags, proto=VIP_PROTO)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _err(f"adding {vip} on ifindex {idx}", exc) from None

    def _prefix_covered(self, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> bool:
        """True when a non-vmacd address already gives a route to the VIP's prefix."""
        if iface.network.prefixlen == iface.max_prefixlen:
            return True
        fam = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        for msg in self.ipr.get_addr(family=fam):
            if msg.get("IFA_PROTO") == VIP_PROTO:
                continue
            own = ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
            if own.network == iface.network:
                return True
        return False

    def vips(self, ifindex: int) -> list[str]:
        """The VIPs (address/prefix) vmacd added on `ifindex`."""
        return [f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}" for m in self.ipr.get_addr(index=ifindex)
                if m.get("IFA_PROTO") == VIP_PROTO]

    def remove_vips(self, ifindex: int, only: list[str] | None = None) -> list[str]:
        """Remove the addresses vmacd added on `ifindex` (all, or those in `only`)."""
        gone = []
        keep_out = None if only is None else {ipaddress.ip_interface(v) for v in only}
        for vip in self.vips(ifindex):
            if keep_out is not None and ipaddress.ip_interface(vip) not in keep_out:
                continue
            iface = ipaddress.ip_interface(vip)
            try:
                self.ipr.addr("del", index=ifindex, address=str(iface.ip),
                              prefixlen=iface.network.prefixlen)
                gone.append(vip)
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise _err(f"removing {vip} from ifindex {ifindex}", exc) from None
        return gone

    # ---- crash recovery -------------------------------------------------------------------
    def leftovers(self) -> list[tuple[int, str, str]]:
        """(ifindex, ifname, instance) of every macvlan carrying a vmacd alias."""
        found = []
        for msg in self.ipr.get_links():
            alias = msg.get("IFLA_IFALIAS") or ""
            kind = msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
            if alias.startswith(ALIAS_PREFIX) and kind == "macvlan":
                found.append((msg["index"], msg.get("IFLA_IFNAME"), alias[len(ALIAS_PREFIX):]))
        return found

    def adopt_or_clean(self, keep: set[str] | frozenset[str] = frozenset()) -> list[Leftover]:
        """After a crash: vMACs of instances in `keep` are adopted (set DOWN, VIPs removed; the
        caller re-creates or re-uses them), all other vmacd macvlans are deleted, and VIPs vmacd
        added on any other interface (vmac=false mode) are removed."""
        done: list[Leftover] = []
        macvlans = set()
        for idx, name, instance in self.leftovers():
            macvlans.add(idx)
            if instance in keep:
                self.remove_vips(idx)
                self.set_down(idx)
                done.append(Leftover("macvlan", name, idx, instance, "adopted"))
            else:
                self.ipr.link("del", index=idx)
                done.append(Leftover("macvlan", name, idx, instance, "deleted"))
        for msg in self.ipr.get_links():
            idx = msg["index"]
            if idx in macvlans:
                continue
            for vip in self.remove_vips(idx):
                done.append(Leftover("vip", msg.get("IFLA_IFNAME"), idx, "", "removed", vip))
        return done


class LinkWatcher:
    """Non-blocking rtnetlink socket subscribed to link and address changes, for
    `loop.add_reader`.

    `read()` drains the socket and returns one LinkChanged per real change of the `up` view
    (admin up and carrier) or deletion; repeated notifications without a change are folded.
    Address notifications come last, as one AddressesChanged per interface that had any.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        self.sock.setblocking(False)
        self._marshal = MarshalRtnl()
        self._last: dict[int, bool] = {}
        self.overruns = 0
        with IPRoute() as ipr:
            for msg in ipr.get_links():
                self._last[msg["index"]] = _link_up(msg)

    def fileno(self) -> int:
        """The fd to register with the event loop."""
        return self.sock.fileno()

    def state(self, ifindex: int) -> bool | None:
        """Last known up state of `ifindex` (None: unknown)."""
        return self._last.get(ifindex)

    def read(self) -> list[LinkChanged | AddressesChanged]:
        """Drain pending notifications. On ENOBUFS (overrun) `overruns` counts it; the caller
        should resynchronise with `VmacManager.is_up` for the links it cares about."""
        events: list[LinkChanged | AddressesChanged] = []
        addresses: dict[int, None] = {}         # ifindexes with address changes, in order
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return events + [AddressesChanged(idx) for idx in addresses]
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            for msg in self._marshal.parse(data):
                if msg["header"]["type"] in (RTM_NEWADDR, RTM_DELADDR):
                    addresses[msg["index"]] = None
                    continue
                event = self._fold(msg)
                if event is not None:
                    events.append(event)

    def _fold(self, msg: object) -> LinkChanged | None:
        idx = msg["index"]
        name = msg.get("IFLA_IFNAME") or ""
        if msg["header"]["type"] == 17:  # RTM_DELLINK
            self._last.pop(idx, None)
            return LinkChanged(idx, name, False, deleted=True)
        up = _link_up(msg)
        if self._last.get(idx) == up:
            return None
        self._last[idx] = up
        return LinkChanged(idx, name, up)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def _link_up(msg: object) -> bool:
    return bool(msg["flags"] & IFF_UP) and msg.get("IFLA_CARRIER") == 1
