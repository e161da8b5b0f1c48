"""The vMAC macvlan devices, the virtual IPs, and a non-polling watch of links and addresses.

What vmacd creates is marked so a restarted daemon can tell it apart from the operator's work:
- a vMAC macvlan carries the interface alias ``vmacd:<instance>`` (IFLA_IFALIAS);
- every virtual IP vmacd adds carries the address protocol ``VIP_PROTO`` (IFA_PROTO, Linux 6.1+).
`Links.adopt_or_clean()` uses both after a crash. Every call runs on the caller's thread through
`vmacd.linux.rtnl` and is synchronous: taking over ("vMAC up, VIPs added") is one `sendmsg()`
that returns when the kernel has done it. docs/linux.md explains the design.
"""
from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vmacd.core.proto import mac_bytes, vmac
from vmacd.linux import rtnl
from vmacd.linux import sysctl as _sysctl
from vmacd.linux.rtnl import Addr, Link, NetlinkError, Request

ALIAS_PREFIX = "vmacd:"
VIP_PROTO = 112            # IFA_PROTO of every VIP vmacd adds (the VRRP protocol number)
MODES = ("private", "bridge")
IFNAMSIZ = 15
_GONE = (errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOENT)


class LinkError(Exception):
    """A netlink operation failed in a way a user can act on; the message says what and where."""


@dataclass(frozen=True)
class Vmac:
    """One vMAC macvlan device that vmacd owns."""

    instance: str
    ifname: str
    ifindex: int
    parent: str
    vrid: int
    family: int        # 4 | 6
    mac: str
    mode: str


@dataclass(frozen=True)
class VmacSpec:
    """A vMAC to create: the instance it belongs to, its parent, VRID, family, mode, name."""

    instance: str
    parent: str
    vrid: int
    family: int
    mode: str
    ifname: str


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


def _check(results: Sequence[object], ignore: tuple[int, ...] = ()) -> None:
    for res in results:
        if isinstance(res, NetlinkError) and res.errno not in ignore:
            raise LinkError(f"{res.strerror} (errno {res.errno})")


def _iface(vip: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(vip)


class Links:
    """Creates, claims, releases and cleans vMAC macvlans and VIPs in the current netns."""

    def __init__(self, sock: rtnl.Rtnl | None = None) -> None:
        self.nl = sock or rtnl.Rtnl()
        # VIP interface -> an operator address routes its prefix
        self._covered: dict[ipaddress.IPv4Interface | ipaddress.IPv6Interface, bool] = {}

    def close(self) -> None:
        self.nl.close()

    # ---- lookups -------------------------------------------------------------------------
    def link(self, ifname: str) -> Link:
        """The link called `ifname`; LinkError naming it when it does not exist."""
        try:
            (msg,) = self.nl.one(rtnl.link_by_name(ifname))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                raise LinkError(f"interface {ifname!r} does not exist") from None
            raise LinkError(str(exc)) from None
        return rtnl.parse_link(msg[1])

    def ifindex(self, ifname: str) -> int:
        return self.link(ifname).index

    def link_by_index(self, ifindex: int) -> Link | None:
        try:
            (msg,) = self.nl.one(rtnl.link_by_index(ifindex))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise LinkError(str(exc)) from None
        return rtnl.parse_link(msg[1])

    def is_up(self, ifindex: int) -> bool:
        """Admin up and carrier (False for a link that is gone)."""
        link = self.link_by_index(ifindex)
        return link is not None and link.up

    def links(self) -> list[Link]:
        return [rtnl.parse_link(body) for _t, body in self.nl.one(rtnl.link_dump())]

    def addresses(self, family: int = 0) -> list[Addr]:
        """Every address of the namespace (one dump), `family` 4 or 6 or both (0)."""
        return [rtnl.parse_addr(body) for _t, body in self.nl.one(rtnl.address_dump(family))]

    def primary_address(self, ifindex: int, family: int,
                        known: Iterable[Addr] | None = None) -> str | None:
        """The first IPv4 address (family 4) or the link-local (family 6) of `ifindex` that is
        not a VIP of ours. `known`: an address dump to search instead of asking the kernel."""
        for a in self.addresses(family) if known is None else known:
            if a.index != ifindex or a.family != family or a.proto == VIP_PROTO:
                continue
            if family == 4 or ipaddress.IPv6Address(a.address).is_link_local:
                return a.address
        return None

    def vips(self, ifindex: int) -> list[str]:
        """The VIPs (address/prefix) vmacd added on `ifindex`."""
        return [f"{a.address}/{a.prefixlen}" for a in self.addresses()
                if a.index == ifindex and a.proto == VIP_PROTO]

    # ---- creation ------------------------------------------------------------------------
    def create(self, instance: str, parent: str, vrid: int, family: int,
               mode: str = "bridge", ifname: str | None = None) -> Vmac:
        """Create (or re-create) the DOWN vMAC macvlan of `instance` on `parent`."""
        spec = VmacSpec(instance, parent, vrid, family, mode, ifname or f"vmac{vrid}.{family}")
        result = self.create_many([spec])[0]
        if isinstance(result, LinkError):
            raise result
        return result

    def create_many(self, specs: Sequence[VmacSpec]) -> list[Vmac | LinkError]:
        """Create several DOWN vMACs with a few batched requests (start-up at scale).

        A device of the same name that vmacd made for the same instance is deleted first; a
        device of that name made by anyone else is refused with LinkError for that spec."""
        existing = {link.name: link for link in self.links()}
        out: dict[int, Vmac | LinkError] = {}
        todo: list[tuple[int, VmacSpec, int]] = []
        stale: list[Request] = []
        for i, spec in enumerate(specs):
            problem = self._refuse(spec, existing)
            parent = existing.get(spec.parent)
            if problem is None and parent is None:
                problem = f"interface {spec.parent!r} does not exist"
            if problem is not None:
                out[i] = LinkError(problem)
                continue
            if spec.ifname in existing:
                stale.append(rtnl.delete_link(existing[spec.ifname].index))
            # a missing parent is a problem above, so parent is a Link here
            todo.append((i, spec, parent.index))       # type: ignore[union-attr]
        if stale:
            _check(self.nl.call(stale), ignore=(errno.ENODEV,))
        reqs: list[Request] = []
        for _i, spec, parent_index in todo:
            mac = mac_bytes(vmac(spec.vrid, spec.family))
            reqs += [rtnl.create_macvlan(spec.ifname, parent_index, mac, spec.mode),
                     rtnl.mark_link(spec.ifname, ALIAS_PREFIX + spec.instance)]
        results = self.nl.call(reqs) if reqs else []
        lookups = self.nl.call([rtnl.link_by_name(spec.ifname) for _i, spec, _p in todo])
        for k, (i, spec, _parent_index) in enumerate(todo):
            failed = [r for r in results[2 * k:2 * k + 2] if isinstance(r, NetlinkError)]
            found = lookups[k]
            if failed or isinstance(found, NetlinkError) or not found:
                why = failed[0] if failed else found
                out[i] = LinkError(f"creating macvlan {spec.ifname} on {spec.parent}: {why}")
                continue
            link = rtnl.parse_link(found[0][1])
            try:
                _sysctl.prepare_vmac(spec.ifname, spec.family)
            except _sysctl.SysctlError as exc:
                out[i] = LinkError(str(exc))
                continue
            out[i] = Vmac(spec.instance, spec.ifname, link.index, spec.parent, spec.vrid,
                          spec.family, link.mac, spec.mode)
        return [out[i] for i in range(len(specs))]

    @staticmethod
    def _refuse(spec: VmacSpec, existing: dict[str, Link]) -> str | None:
        if spec.mode not in MODES:
            return f"macvlan mode must be one of {', '.join(MODES)}, got {spec.mode!r}"
        if len(spec.ifname) > IFNAMSIZ:
            return f"interface name {spec.ifname!r} is longer than {IFNAMSIZ} characters"
        link = existing.get(spec.ifname)
        if link is not None and link.alias != ALIAS_PREFIX + spec.instance:
            return (f"interface {spec.ifname!r} exists and was not made by vmacd for instance "
                    f"{spec.instance!r} (alias {link.alias!r}); remove or rename it")
        return None

    def delete(self, target: Vmac) -> None:
        """Delete the macvlan (its VIPs go with it). Missing device: nothing to do."""
        _check(self.nl.call([rtnl.delete_link(target.ifindex)]), ignore=(errno.ENODEV,))

    # ---- claim / release ----------------------------------------------------------------
    def prepare_vips(self, vips: Iterable[str], known: Iterable[Addr] | None = None) -> None:
        """Decide `noprefixroute` for these VIPs now (one address dump), not at takeover."""
        addrs = list(self.addresses() if known is None else known)
        for vip in vips:
            iface = _iface(vip)
            self._covered[iface] = self._prefix_covered(iface, addrs)

    def claim(self, target: Vmac | int, vips: Sequence[str], drop: Sequence[str] = ()) -> None:
        """Become master in one request batch: the vMAC up (a Vmac; an ifindex is the parent of
        a `vmac = false` instance, left as it is) and the VIPs added (IPv6 nodad); `drop`: VIPs
        to remove in the same batch (a reload shrank the list). Already present is fine."""
        idx = target.ifindex if isinstance(target, Vmac) else target
        reqs = [rtnl.set_link_up(idx, True)] if isinstance(target, Vmac) else []
        reqs += [self._vip_request(True, idx, vip) for vip in vips]
        reqs += [self._vip_request(False, idx, vip) for vip in drop]
        _check(self.nl.call(reqs), ignore=(errno.EEXIST,) + _GONE)

    def release(self, target: Vmac | int, vips: Sequence[str] | None = None) -> None:
        """Leave master: take the vMAC down (a Vmac) and remove the VIPs, in one batch (`vips`
        None: every VIP vmacd added there). A device that went away with its parent is released
        enough."""
        idx = target.ifindex if isinstance(target, Vmac) else target
        if vips is None:
            vips = self.vips(idx)
        reqs = [rtnl.set_link_up(idx, False)] if isinstance(target, Vmac) else []
        reqs += [self._vip_request(False, idx, vip) for vip in vips]
        _check(self.nl.call(reqs), ignore=_GONE)

    def set_down(self, ifindex: int) -> None:
        _check(self.nl.call([rtnl.set_link_up(ifindex, False)]), ignore=_GONE)

    def _vip_request(self, add: bool, idx: int, vip: str) -> Request:
        iface = _iface(vip)
        if not add:
            return rtnl.address(False, idx, str(iface.ip), iface.network.prefixlen)
        flags = rtnl.IFA_F_NODAD if iface.version == 6 else 0
        covered = self._covered.get(iface)
        if covered if covered is not None else self._prefix_covered(iface, self.addresses()):
            flags |= rtnl.IFA_F_NOPREFIXROUTE
        return rtnl.address(True, idx, str(iface.ip), iface.network.prefixlen, flags, VIP_PROTO)

    @staticmethod
    def _prefix_covered(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
                        addrs: Iterable[Addr]) -> bool:
        """True when a non-vmacd address already gives a route to the VIP's prefix."""
        if iface.network.prefixlen == iface.max_prefixlen:
            return True
        for a in addrs:
            if a.proto == VIP_PROTO or a.family != iface.version:
                continue
            if ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network == iface.network:
                return True
        return False

    def remove_vips(self, ifindex: int, only: Iterable[str] | None = None) -> list[str]:
        """Remove the addresses vmacd added on `ifindex` (all, or those in `only`)."""
        wanted = None if only is None else {_iface(v) for v in only}
        gone = [v for v in self.vips(ifindex) if wanted is None or _iface(v) in wanted]
        _check(self.nl.call([self._vip_request(False, ifindex, v) for v in gone]), ignore=_GONE)
        return gone

    # ---- crash recovery -------------------------------------------------------------------
    def leftovers(self) -> list[tuple[int, str, str]]:
        """(ifindex, ifname, instance) of every macvlan carrying a vmacd alias."""
        return [(link.index, link.name, link.alias[len(ALIAS_PREFIX):]) for link in self.links()
                if link.alias.startswith(ALIAS_PREFIX) and link.kind == "macvlan"]

    def adopt_or_clean(self, keep: Iterable[str] = ()) -> list[Leftover]:
        """After a crash: vMACs of instances in `keep` are adopted (set DOWN, VIPs removed; the
        caller re-creates them), all other vmacd macvlans are deleted, and VIPs vmacd added on
        any other interface (vmac = false mode) are removed."""
        keep = set(keep)
        done: list[Leftover] = []
        names = {link.index: link.name for link in self.links()}
        macvlans = set()
        for idx, name, instance in self.leftovers():
            macvlans.add(idx)
            if instance in keep:
                self.set_down(idx)
                self.remove_vips(idx)
                done.append(Leftover("macvlan", name, idx, instance, "adopted"))
            else:
                _check(self.nl.call([rtnl.delete_link(idx)]), ignore=(errno.ENODEV,))
                done.append(Leftover("macvlan", name, idx, instance, "deleted"))
        for a in self.addresses():
            if a.proto == VIP_PROTO and a.index not in macvlans:
                vip = f"{a.address}/{a.prefixlen}"
                _check(self.nl.call([self._vip_request(False, a.index, vip)]), ignore=_GONE)
                done.append(Leftover("vip", names.get(a.index, str(a.index)), a.index, "",
                                     "removed", vip))
        return done


class LinkWatcher:
    """Non-blocking rtnetlink socket subscribed to link and address changes, for the loop.

    `read()` drains the socket and returns one LinkChanged per real change of the `up` view
    (admin up and carrier) or deletion; repeated notifications without a change are folded.
    Address notifications come last, as one AddressesChanged per interface that had any.
    `overruns` counts lost notifications (ENOBUFS): the caller then reads the state again.
    """

    def __init__(self, links: Links) -> None:
        self.nl = rtnl.Rtnl(groups=rtnl.RTMGRP_LINK | rtnl.RTMGRP_IPV4_IFADDR
                            | rtnl.RTMGRP_IPV6_IFADDR, rcvbuf=4 << 20)
        self.overruns = 0
        self._last: dict[int, bool] = {link.index: link.up for link in links.links()}
        self.names: dict[int, str] = {link.index: link.name for link in links.links()}

    def fileno(self) -> int:
        return self.nl.fileno()

    def state(self, ifindex: int) -> bool | None:
        return self._last.get(ifindex)

    def read(self) -> list[LinkChanged | AddressesChanged]:
        events: list[LinkChanged | AddressesChanged] = []
        addresses: dict[int, None] = {}
        while True:
            try:
                for mtype, body in self.nl.messages():
                    if mtype in (rtnl.RTM_NEWADDR, rtnl.RTM_DELADDR):
                        addresses[rtnl.parse_addr(body).index] = None
                    elif mtype in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
                        event = self._fold(mtype, rtnl.parse_link(body))
                        if event is not None:
                            events.append(event)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            return events + [AddressesChanged(idx) for idx in addresses]

    def _fold(self, mtype: int, link: Link) -> LinkChanged | None:
        if mtype == rtnl.RTM_DELLINK:
            self._last.pop(link.index, None)
            self.names.pop(link.index, None)
            return LinkChanged(link.index, link.name, False, deleted=True)
        self.names[link.index] = link.name
        if self._last.get(link.index) == link.up:
            return None
        self._last[link.index] = link.up
        return LinkChanged(link.index, link.name, link.up)

    def close(self) -> None:
        self.nl.close()
