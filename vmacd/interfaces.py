"""Interfaces as the daemon sees them move: links up/down/deleted/created, addresses changed.

`Interfaces` reads the netlink watch (vmacd.linux.links.LinkWatcher) on the loop and turns it
into inputs for the runners and trackers:

- a parent's link up/down -> `LinkChanged` to the runners on it (down is a fault);
- a tracked interface's link -> the trackers;
- a parent's addresses -> each runner follows its primary address (one dump per read);
- an interface that appears (a VLAN, bond or VPN that comes up after vmacd, or one deleted and
  created again with a new ifindex) -> the instances waiting for it, or running on its old
  device, are built again on it once it has an address; the old runner's history carries over.
After a netlink overrun (ENOBUFS) it reads the state again instead of trusting the events.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from vmacd.core.events import LinkChanged as LinkInput
from vmacd.core.states import Transition
from vmacd.linux.links import AddressesChanged, LinkChanged, LinkError, LinkWatcher

if TYPE_CHECKING:
    from vmacd.daemon import Daemon

log = logging.getLogger("vmacd.interfaces")


class Interfaces:
    """The link watch of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.links = daemon.links
        self.watch = LinkWatcher(daemon.links)
        daemon.loop.add_reader(self.watch.fileno(), self._readable)

    def close(self) -> None:
        self.d.loop.remove_reader(self.watch.fileno())
        self.watch.close()

    def is_up(self, ifindex: int) -> bool:
        return self.links.is_up(ifindex)

    def is_up_by_name(self, ifname: str) -> bool:
        try:
            return self.links.link(ifname).up
        except LinkError:
            return False                # a tracked interface that does not exist is down

    def _readable(self) -> None:
        overruns = self.watch.overruns
        created: set[str] = set()
        addressed: set[int] = set()
        for ev in self.watch.read():
            if isinstance(ev, AddressesChanged):
                addressed.add(ev.ifindex)
            else:
                self._link(ev, created)
        if self.watch.overruns != overruns:
            self._resync()
            return
        if addressed:
            self._addresses(addressed)
        wanted = self._waiting_for()
        if created or any(self.watch.names.get(i) in wanted for i in addressed):
            self.retry()

    def _waiting_for(self) -> set[str]:
        """The interfaces instances wait for: those of waiting instances, and those that exist
        again as a new device under a running (faulted) instance."""
        cfg = self.d.config
        names = {cfg.instance(n).interface for n in self.d.waiting if n in cfg.instance_names}
        index_of = {name: idx for idx, name in self.watch.names.items()}
        return names | {r.cfg.interface for r in self.d.runners.values()
                        if index_of.get(r.cfg.interface, r.parent_index) != r.parent_index}

    def _link(self, ev: LinkChanged, created: set[str]) -> None:
        for runner in list(self.d.runners.values()):
            if runner.parent_index == ev.ifindex:
                if ev.deleted or runner.router.link_up != ev.up:
                    runner.handle(LinkInput(ev.up and not ev.deleted))
            elif ev.ifname == runner.cfg.interface and not ev.deleted:
                created.add(ev.ifname)                   # the same name, a new device
        if not ev.deleted and ev.ifname in self._waiting_for():
            created.add(ev.ifname)
        self.d.trackers.link_changed(ev.ifname, ev.up and not ev.deleted)

    def _addresses(self, indexes: set[int]) -> None:
        """Tell each runner its parent's current primary address and own addresses: one dump,
        however many instances share the parent."""
        try:
            addrs = self.links.addresses()
        except LinkError as exc:
            log.warning("reading the addresses failed: %s", exc)
            return
        for runner in list(self.d.runners.values()):
            if runner.parent_index not in indexes:
                continue
            fam = runner.cfg.family
            own = frozenset(ipaddress.ip_address(a.address) for a in addrs
                            if a.index == runner.parent_index and a.proto != 112)
            runner.addresses_changed(self.links.primary_address(runner.parent_index, fam, addrs),
                                     own)

    def retry(self) -> None:
        """Build again the instances that wait for their interface, and those whose interface
        exists again as a new device (their runner is replaced; its history carries over)."""
        d = self.d
        if d._stopping:
            return
        current = {link.name: link.index for link in self.links.links()}
        addrs = self.links.addresses()
        todo = []
        history: dict[str, list[Transition]] = {}
        for name, reason in list(d.waiting.items()):
            if name in d.config.instance_names and "could not start" not in reason:
                todo.append(d.config.instance(name))
                if name in d.waiting_history:
                    history[name] = d.waiting_history.pop(name)
        for name, runner in list(d.runners.items()):
            idx = current.get(runner.cfg.interface)
            if (idx is not None and idx != runner.parent_index
                    and self.links.primary_address(idx, runner.cfg.family, addrs) is not None):
                # the old runner stays (in fault) until the new device can carry the instance
                history[name] = list(runner.router.history)
                d.remove_runner(runner)
                todo.append(d.config.instance(name))
        if not todo:
            return
        for runner in d.build(todo):
            if runner.name in history:
                log.warning("%s: interface %s is back as a new device (ifindex %d): instance "
                            "started again on it", runner.name, runner.cfg.interface,
                            runner.parent_index, extra={"instance": runner.name})
            else:
                log.info("%s: interface %s is here: instance starting", runner.name,
                         runner.cfg.interface, extra={"instance": runner.name})
            d.start_runner(runner, history.pop(runner.name, ()))
        for name, old in history.items():        # not built (no address yet): keep the history
            d.waiting_history[name] = old

    def _resync(self) -> None:
        """The kernel dropped notifications: read the parents' and trackers' state again."""
        log.warning("link notifications were lost (socket overrun): reading the interfaces again")
        for runner in list(self.d.runners.values()):
            up = self.links.is_up(runner.parent_index)
            if up != runner.router.link_up:
                runner.handle(LinkInput(up))
            for ti in runner.cfg.track_interfaces:
                self.d.trackers.link_changed(ti.name, self.is_up_by_name(ti.name))
        self._addresses({r.parent_index for r in self.d.runners.values()})
        self.retry()
