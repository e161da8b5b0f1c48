"""The vmacd daemon: an asyncio loop that routes packets, link and tracker events to the instances.

Life cycle (`Daemon.run`): clean or adopt what a crashed predecessor left, set the parents'
sysctls, start the guardian, open the receive sockets, create every instance's (down) vMAC, start
the link watch, trackers, metrics and control socket, send Startup to every instance, tell
systemd READY. SIGTERM/SIGINT: Shutdown to every instance (priority 0, make-before-break), wait
for each to finish, delete what vmacd made, restore sysctls, exit 0. SIGHUP: reload as a diff.
Signals only set flags (STYLE §4); the loop acts on them.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time

from vmacd import __version__
from vmacd.config import diff as config_diff
from vmacd.config import load as config_load
from vmacd.config import model
from vmacd.config.reader import ConfigError
from vmacd.control.commands import Dispatcher, ReloadError
from vmacd.control.metrics import Metrics
from vmacd.control.server import ControlServer
from vmacd.core import groups, wire
from vmacd.core.events import LinkChanged, Maintenance, Shutdown, Startup, TrackChanged
from vmacd.instance import InstanceRunner, Wiring
from vmacd.linux import netlink, sockets
from vmacd.linux.guardian import Guardian, GuardianError
from vmacd.linux.nft import AcceptModeFilter, NftError, OwnerFilter
from vmacd.linux.nlthread import ThreadedVmacs
from vmacd.linux.sdnotify import Notifier
from vmacd.linux.sysctl import SysctlGuard
from vmacd.tracking import Trackers

log = logging.getLogger("vmacd")

AH_HEADER_LEN = 24           # IPsec AH with a 96-bit ICV: the VRRP header starts after it
RECV_BURST = 256             # datagrams drained per readiness callback
STOP_GRACE = 1.0             # seconds beyond the longest handover bound before we give up
RENEW_RETRY = 0.5            # s: look again for the address of a re-created interface


class Daemon:
    """Everything one `vmacd run` owns. `run()` returns the exit code."""

    def __init__(self, config: model.Config, path: str) -> None:
        self.config = config
        self.path = path
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runners: dict[str, InstanceRunner] = {}
        self._by_key: dict[tuple[int, int, int], InstanceRunner] = {}
        self._parent_of: dict[int, int] = {}          # ifindex (parent or vMAC) -> parent ifindex
        self._socks: dict[tuple[int, int], sockets.VrrpSocket] = {}
        self._stop = asyncio.Event()
        self._settling = False
        self.notifier = Notifier.from_env(unset=True)    # scripts must not talk to systemd
        self.metrics = Metrics()
        self.vmacs = ThreadedVmacs()
        self.sysctls = SysctlGuard()
        self.guardian = None
        self.accept_filter = AcceptModeFilter()
        self.owner_filter = OwnerFilter()
        self.procs = None
        self.trackers: Trackers | None = None
        self.watcher: netlink.LinkWatcher | None = None
        self.control: ControlServer | None = None
        self.dispatcher: Dispatcher | None = None
        self._drop_log_at = 0.0
        self._renewed: set[str] = set()                 # instances whose interface came back
        self._renew_failed: set[str] = set()
        self._renew_history: dict[str, list] = {}       # the old device's transitions
        self._renew_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ life cycle
    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._stop.set)
        self.loop.add_signal_handler(signal.SIGHUP, self._sighup)
        try:
            await self._start()
        except Exception as exc:
            log.error("startup failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            await self._teardown()
            return 1
        # everything made so far lives until exit: move it out of the collector's way, so a
        # collection during the run scans only new objects (shorter pauses between adverts)
        gc.collect()
        gc.freeze()
        self.notifier.ready(f"{len(self.runners)} instance(s)")
        watchdog = asyncio.ensure_future(self.notifier.run_watchdog())
        log.info("vmacd %s running: %s", __version__, ", ".join(self.runners) or "no instances")
        await self._stop.wait()
        self.notifier.stopping("releasing mastership")
        watchdog.cancel()
        await self._shutdown_all("SIGTERM")
        await self._teardown()
        log.info("vmacd stopped")
        return 0

    async def _start(self) -> None:
        from vmacd.linux.procs import SerialRunner

        names = {i.name for i in self.config.instances}
        for left in self.vmacs.adopt_or_clean(keep=names):
            log.warning("cleaned leftover of a previous run: %s %s (%s)", left.kind, left.ifname,
                        left.action)
        self.guardian = Guardian.start()
        self.procs = SerialRunner()
        self._clean_accept_table()
        if self.config.global_.metrics_enabled:
            self.metrics.serve(self.config.global_.metrics_listen)
        self.watcher = self.vmacs.call(lambda _vm: netlink.LinkWatcher())
        self.loop.add_reader(self.watcher.fileno(), self._on_links)
        self.trackers = Trackers(self.loop, self._on_track)
        for inst in self.config.instances:
            self._add_instance(inst)
        self.trackers.configure(self.config.instances)
        self.dispatcher = Dispatcher(self)
        self.control = ControlServer(self.config.global_.control_socket, self.dispatcher)
        await self.control.start()
        for runner in self.runners.values():
            self._start_instance(runner)

    def _add_instance(self, inst: model.Instance) -> InstanceRunner:
        wiring = Wiring(loop=self.loop, vmacs=self.vmacs, metrics=self.metrics, procs=self.procs,
                        unicast_send=self._unicast_send, on_change=self._on_change,
                        notify_script=self.config.global_.notify, guardian=self.guardian,
                        accept_filter=self.accept_filter, owner_filter=self.owner_filter)
        runner = InstanceRunner(inst, wiring)
        if inst.vmac:
            self.sysctls.configure_parent(inst.interface)
        try:
            runner.setup()
        except Exception:
            runner.close()                 # a half-made vMAC must not outlive the failure
            raise
        self.runners[inst.name] = runner
        self._by_key[(runner.parent_index, inst.family, inst.vrid)] = runner
        self._parent_of[runner.parent_index] = runner.parent_index
        sock = self._socket(inst.family, 51 if runner.auth.type == "ah" else 112)
        if not inst.unicast_peers:
            sock.join(runner.parent_index)
        if runner.vmac is not None:
            self._parent_of[runner.vmac.ifindex] = runner.parent_index
            if inst.vmac_mode == "private" and not inst.unicast_peers:
                # private mode: our own vMAC's group traffic reaches only the macvlan
                sock.join(runner.vmac.ifindex)
        return runner

    def _clean_accept_table(self) -> None:
        """Remove the nftables tables vmacd keeps (accept = false drops, the owner's ARP filter),
        also when a crashed predecessor left them."""
        try:
            self.accept_filter.close()
            self.owner_filter.close()
        except NftError as exc:
            if any((not i.accept and not i.owner) or (i.owner and i.vmac)
                   for i in self.config.instances):
                raise                   # an instance needs nftables: say so at startup
            log.debug("no nftables cleanup: %s", exc)

    def _start_instance(self, runner: InstanceRunner) -> None:
        up = self.vmacs.is_up(runner.parent_index)
        if not up:
            runner.handle(LinkChanged(False))
        for ev in self.trackers.initial(runner.cfg, self._link_is_up):
            self._on_track(runner.cfg.name, ev)
        runner.handle(Startup())

    def _socket(self, family: int, proto: int) -> sockets.VrrpSocket:
        key = (family, proto)
        if key not in self._socks:
            sock = sockets.VrrpSocket(family, proto)
            self._socks[key] = sock
            self.loop.add_reader(sock.fileno(), self._on_readable, sock)
        return self._socks[key]

    async def _shutdown_all(self, reason: str) -> None:
        await self._stop_runners(list(self.runners.values()), reason)

    async def _stop_runners(self, runners: list[InstanceRunner], reason: str) -> None:
        """Shutdown (priority 0 / make-before-break) and wait until each one has let go."""
        for runner in runners:
            runner.handle(Shutdown(reason))
        bound = max((r.cfg.advert_interval * 4 for r in runners), default=0) + STOP_GRACE
        waits = [asyncio.ensure_future(r.stopped.wait()) for r in runners]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=bound)
            for w in pending:
                w.cancel()
        for runner in runners:
            self._remove_runner(runner)

    def _remove_runner(self, runner: InstanceRunner) -> None:
        try:
            runner.close()
        except Exception as exc:  # noqa: BLE001 - one instance's cleanup must not stop the rest
            log.error("%s: cleanup failed: %s", runner.cfg.name, exc)
        self.runners.pop(runner.cfg.name, None)
        self._by_key = {k: r for k, r in self._by_key.items() if r is not runner}
        if runner.vmac is not None:
            self._parent_of.pop(runner.vmac.ifindex, None)

    async def _teardown(self) -> None:
        if self._renew_handle is not None:
            self._renew_handle.cancel()
        for runner in list(self.runners.values()):
            self._remove_runner(runner)
        if self.trackers is not None:
            await self.trackers.close()
        if self.control is not None:
            await self.control.stop()
        for sock in self._socks.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
        if self.watcher is not None:
            self.loop.remove_reader(self.watcher.fileno())
            self.watcher.close()
        try:
            self._clean_accept_table()
        except NftError as exc:
            log.error("could not remove the nftables table: %s", exc)
        for path in self.sysctls.restore():
            log.warning("could not restore sysctl %s", path)
        if self.procs is not None:
            try:        # resource stop commands and the last notify run to the end
                await self.procs.drain(timeout=self._drain_timeout())
            except TimeoutError:
                log.warning("stop commands still running at exit: killed")
            await self.procs.close()
        if self.guardian is not None:
            try:            # a clean stop: everything is released already, nothing to guard
                self.guardian.disarm()
            except GuardianError as exc:
                log.warning("%s", exc)
        self.metrics.close()
        self.vmacs.close()

    def _drain_timeout(self) -> float:
        res = [r.timeout for i in self.config.instances for r in i.resources]
        return max(res, default=0.0) + 10.0

    # ------------------------------------------------------------------ packets
    def _on_readable(self, sock: sockets.VrrpSocket) -> None:
        for _ in range(RECV_BURST):
            rec = sock.recv()
            if rec is None:
                return
            self._dispatch(rec)

    def _dispatch(self, rec: sockets.Received) -> None:
        parent = self._parent_of.get(rec.ifindex)
        if parent is None:
            return                      # an interface no instance runs on: not ours to judge
        off = AH_HEADER_LEN + 1 if rec.proto == 51 else 1
        vrid = rec.data[off] if len(rec.data) > off else None
        runner = self._by_key.get((parent, rec.src.version, vrid))
        if runner is None:
            reason = "vrid" if vrid is not None else "length"
            self.metrics.dropped_unknown(reason, vrid, self._ifname(parent))
            self._log_drop(reason, f"VRID {vrid} from {rec.src} is not configured here")
            return
        if rec.src == runner.primary:
            return                      # our own advertisement reflected back: not a peer
        cfg = runner.cfg
        try:
            if rec.proto == 51:
                adv = wire.decode_ip_packet(rec.header + rec.data, runner.auth,
                                            pseudo_header=cfg.v3_checksum_pseudoheader,
                                            strict_checksum=cfg.v3_checksum_strict)
            elif runner.last_decoded is not None and runner.last_decoded[0] == rec[:4]:
                adv = runner.last_decoded[1]    # the same bytes from the same peer as last time
            else:
                adv = wire.decode(rec.data, src=rec.src, dst=rec.dst, ttl=rec.ttl,
                                  auth=runner.auth, pseudo_header=cfg.v3_checksum_pseudoheader,
                                  strict_checksum=cfg.v3_checksum_strict)
                runner.last_decoded = (rec[:4], adv)
            if runner.auth.type in ("hmac-sha256", "ah"):
                runner.replay.check(adv)
        except wire.PacketError as exc:
            runner.metrics.dropped(exc.reason)
            self._log_drop(exc.reason, f"{cfg.name}: from {rec.src}: {exc.detail}")
            return
        runner.on_advert(adv)

    def _log_drop(self, reason: str, detail: str) -> None:
        """RFC 9568 §7.1 SHOULD log discards, rate-limited: at most one line per second."""
        now = time.monotonic()
        if now - self._drop_log_at >= 1.0:
            self._drop_log_at = now
            log.info("dropped advertisement (%s): %s", reason, detail, extra={"reason": reason})

    def _unicast_send(self, family: int, payload: bytes, peer: str, ifindex: int) -> bool:
        err = self._socket(family, 112).send_unicast(payload, peer, ifindex)
        if err:
            log.warning("unicast advertisement to %s not sent: %s", peer, err)
        return err is None

    def _ifname(self, ifindex: int) -> str:
        for r in self.runners.values():
            if r.parent_index == ifindex:
                return r.cfg.interface
        return str(ifindex)

    # ------------------------------------------------------------------ links, trackers, groups
    def _on_links(self) -> None:
        overruns = self.watcher.overruns
        for ev in self.watcher.read():
            if isinstance(ev, netlink.AddressesChanged):
                self._refresh_primaries([r for r in self.runners.values()
                                         if r.parent_index == ev.ifindex])
                continue
            for runner in list(self.runners.values()):
                if runner.parent_index == ev.ifindex:
                    runner.handle(LinkChanged(ev.up and not ev.deleted))
                elif ev.ifname == runner.cfg.interface and not ev.deleted:
                    self._renewed.add(runner.cfg.name)
            self.trackers.link_changed(ev.ifname, ev.up and not ev.deleted)
        if self.watcher.overruns != overruns:
            self._resync_links()
        if self._renewed:
            self._start_renewed()

    def _resync_links(self) -> None:
        """The kernel dropped notifications (ENOBUFS): read the parents' state instead."""
        log.warning("link notifications were lost (socket overrun): reading the interfaces again")
        for runner in list(self.runners.values()):
            try:
                up = self.vmacs.is_up(runner.parent_index)
            except Exception:  # noqa: BLE001 - gone: the next link event says what replaced it
                up = False
            if up != runner.router.link_up:
                runner.handle(LinkChanged(up))
            for ti in runner.cfg.track_interfaces:
                self.trackers.link_changed(ti.name, self._link_is_up(ti.name))
        self._refresh_primaries(list(self.runners.values()))

    def _refresh_primaries(self, runners: list[InstanceRunner]) -> None:
        """Tell each runner its parent's current primary address: one netlink read per parent
        and family, however many instances share it (a VIP added in vmac = false mode is an
        address change on the parent too)."""
        found: dict[tuple[int, int], str | None] = {}
        for runner in runners:
            key = (runner.parent_index, runner.cfg.family)
            if key not in found:
                try:
                    found[key] = self.vmacs.primary_address(*key)
                except Exception as exc:  # noqa: BLE001 - netlink trouble must not stop the loop
                    log.warning("reading the addresses of ifindex %d failed: %s", key[0], exc)
                    continue
            runner.refresh_primary(found[key])

    def _start_renewed(self) -> None:
        """Instances whose interface exists again as a new device (a NIC driver reload, a
        re-created VLAN or veth). The old device went away with the vMAC on it and the instance
        sat in fault; once the new one has the address to advertise from, the instance starts
        afresh on it, as a reload would. Address changes send no link event, so until then this
        looks again every RENEW_RETRY seconds."""
        if self._renew_handle is not None:
            self._renew_handle.cancel()
            self._renew_handle = None
        for name in sorted(self._renewed):
            old = self.runners.get(name)
            # the current config: a reload meanwhile may have changed or removed the instance
            cfg = next((i for i in self.config.instances if i.name == name), None)
            try:
                idx = self.vmacs.ifindex(cfg.interface) if cfg is not None else None
            except netlink.LinkError:
                continue                            # gone again: wait for the next one
            if cfg is None or (old is not None and old.parent_index == idx):
                self._renewed.discard(name)         # reloaded away, or already running on it
                self._renew_history.pop(name, None)
                continue
            if self.vmacs.primary_address(idx, cfg.family) is None:
                continue                            # no address yet: look again
            if old is not None:
                self._renew_history[name] = list(old.router.history)   # vmacctl history keeps it
                self._remove_runner(old)
            try:
                fresh = self._add_instance(cfg)
            except (netlink.LinkError, OSError, RuntimeError) as exc:
                if name not in self._renew_failed:
                    self._renew_failed.add(name)
                    log.error("%s: could not start on the new %s (trying again): %s",
                              name, cfg.interface, exc)
                continue
            self._renewed.discard(name)
            self._renew_failed.discard(name)
            fresh.router.history.extend(self._renew_history.pop(name, ()))
            log.warning("%s: interface %s is back as a new device (ifindex %d): instance "
                        "started again on it", name, cfg.interface, idx, extra={"instance": name})
            self._start_instance(fresh)
        if self._renewed and self._renew_handle is None:
            self._renew_handle = self.loop.call_later(RENEW_RETRY, self._start_renewed)

    def _link_is_up(self, ifname: str) -> bool:
        try:
            return self.vmacs.is_up(self.vmacs.ifindex(ifname))
        except netlink.LinkError:
            return False                # a tracked interface that does not exist is down

    def _on_track(self, instance: str, event: TrackChanged) -> None:
        runner = self.runners.get(instance)
        if runner is not None:
            runner.metrics.track(event.name, event.up)
            runner.handle(event)

    def _on_change(self, runner: InstanceRunner) -> None:
        """A state changed: let its sync groups settle, and tell systemd."""
        if self._settling:
            return
        self._settling = True
        try:
            members = {n: r.router for n, r in self.runners.items()}
            for group in self._groups_of(runner.cfg.name):
                for name, action in groups.settle(group, members, self.loop.time()):
                    self.runners[name].execute([action])
        finally:
            self._settling = False
        states = ", ".join(f"{n}={r.router.state.value}" for n, r in self.runners.items())
        self.notifier.status(states)

    def _groups_of(self, name: str) -> list[groups.SyncGroup]:
        return [groups.SyncGroup(g.name, g.instances) for g in self.config.sync_groups
                if name in g.instances]

    # ------------------------------------------------------------------ control API
    def status(self) -> dict:
        return {"node": self.config.global_.node, "version": __version__, "pid": os.getpid(),
                "instances": [r.status() for r in self.runners.values()]}

    def history(self) -> list[dict]:
        out = [h for r in self.runners.values() for h in r.history()]
        return sorted(out, key=lambda h: h["time"])

    def maintenance(self, instance: str, on: bool) -> dict:
        runner = self.runners[instance]            # KeyError -> "unknown instance" reply
        if not on:
            runner.clear_resource_faults()
        runner.handle(Maintenance(on))
        return {"instance": instance, "maintenance": on, "state": runner.router.state.value}

    def _sighup(self) -> None:
        asyncio.ensure_future(self._reload_logged())

    async def _reload_logged(self) -> None:
        """SIGHUP goes through the same command table as `vmacctl reload`."""
        if self.dispatcher is None:
            return
        reply = await self.dispatcher.handle({"cmd": "reload"})
        if reply.get("ok"):
            log.info("reloaded: %s", {k: v for k, v in reply.items() if k != "ok"})
        else:
            log.error("%s; keeping the running config", reply.get("error"))

    async def reload(self) -> dict:
        """Validate the file first; then stop removed/changed instances and start new ones."""
        try:
            new = config_load.load(self.path)
        except ConfigError as exc:
            raise ReloadError("; ".join(str(i) for i in exc.errors)) from None
        except OSError as exc:
            raise ReloadError(f"{self.path}: {exc.strerror or exc}") from None
        d = config_diff.diff(self.config, new)
        missing = sorted({new.instance(n).interface for n in (*d.changed, *d.added)
                          if not self._interface_exists(new.instance(n).interface)})
        if missing:         # refused before anything is touched, like a config error
            raise ReloadError(f"interface(s) {', '.join(missing)} do not exist")
        self.notifier.reloading()
        if d.global_changed:
            log.warning("[global] changed: control_socket/metrics_listen apply after a restart")
        gone = [self.runners[n] for n in (*d.removed, *d.changed) if n in self.runners]
        await self._stop_runners(gone, "reload")
        self.config = new
        started, failed = [], {}
        for name in (*d.changed, *d.added):
            try:
                started.append(self._add_instance(new.instance(name)))
            except (netlink.LinkError, OSError, RuntimeError) as exc:
                log.error("reload: instance %s could not start: %s", name, exc)
                failed[name] = str(exc)
        self.trackers.configure(new.instances)
        for runner in started:
            self._start_instance(runner)
        self.notifier.ready("reloaded")
        reply = {"added": list(d.added), "removed": list(d.removed),
                 "changed": list(d.changed), "unchanged": list(d.unchanged)}
        if failed:
            reply["failed"] = failed
        return reply

    def _interface_exists(self, ifname: str) -> bool:
        try:
            self.vmacs.ifindex(ifname)
        except netlink.LinkError:
            return False
        return True
