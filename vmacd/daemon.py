"""The vmacd daemon: its life cycle, and the runners it builds and routes to.

`Daemon.run()`: answer the control socket at once, start the guardian, clean or adopt what a
crashed predecessor left, build every instance (batched: one link dump, one address dump, the
vMACs in one netlink batch), start them (each runs its resources' stop once, then Startup), tell
systemd READY, and run the loop. An instance whose interface does not exist yet (or has no
address yet) waits in `init` and starts when it appears (vmacd/interfaces.py).
SIGTERM/SIGINT: every runner shuts down (priority 0, make-before-break), the daemon waits for them
and for their resources' stop commands, deletes what it made, restores the sysctls, exits 0.
SIGHUP and `vmacctl reload` apply a diff (vmacd/reload.py). Signals only wake the loop; the
loop acts. docs/architecture.md draws the pieces.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from vmacd import __version__
from vmacd.config import model
from vmacd.core import groups
from vmacd.core.events import LinkChanged, Maintenance
from vmacd.core.proto import IPPROTO_AH, VRRP_PROTO
from vmacd.core.states import Transition
from vmacd.interfaces import Interfaces
from vmacd.linux import sched
from vmacd.linux.guardian import Guardian, GuardianError
from vmacd.linux.links import LinkError, Links, Vmac, VmacSpec
from vmacd.linux.nft import AcceptModeFilter, NftError, OwnerFilter
from vmacd.linux.procs import Processes
from vmacd.linux.rtnl import Addr, Link
from vmacd.linux.sdnotify import Notifier, Repeating
from vmacd.linux.sockets import SocketError
from vmacd.linux.sysctl import SysctlError, SysctlGuard
from vmacd.loop import Deferred, Loop
from vmacd.receiver import Receiver
from vmacd.reload import Reloader
from vmacd.runner import Runner
from vmacd.tracking import Trackers

if TYPE_CHECKING:
    from vmacd.control.metrics import Metrics
    from vmacd.control.server import ControlServer

log = logging.getLogger("vmacd")

STOP_GRACE = 1.0             # seconds beyond the longest handover bound before we give up
DRAIN_GRACE = 10.0           # seconds beyond the longest resource timeout for stop commands
BUILD_BATCH = 64             # instances built per loop iteration at start-up
MAINTENANCE_FILE = "maintenance.json"


class Daemon:
    """Everything one `vmacd run` owns. `run()` returns the exit code."""

    def __init__(self, config: model.Config, path: str, metrics: Metrics) -> None:
        self.config = config
        self.path = path
        self.loop = Loop()
        self.metrics = metrics
        self.notifier = Notifier.from_env(unset=True)    # scripts must not talk to systemd
        self.runners: dict[str, Runner] = {}
        self.waiting: dict[str, str] = {}                # instance -> why it waits
        self.waiting_history: dict[str, list[Transition]] = {}   # a waiting one's earlier history
        self.starting: set[str] = set()                  # configured, not built yet
        self.sysctls = SysctlGuard()
        self.accept_filter = AcceptModeFilter()
        self.owner_filter = OwnerFilter()
        self.procs = Processes(self.loop)
        self.receiver = Receiver(self.loop, metrics)
        self._links: Links | None = None                 # made by run(): links
        self.guardian: Guardian | None = None
        self.trackers = Trackers(self.loop, self.procs, self._on_track)
        self._interfaces: Interfaces | None = None       # made by run(): interfaces
        self.reloader = Reloader(self)
        self.notify_script = config.global_.notify
        self.control: ControlServer | None = None
        self._exit = 0
        self._stopping = False
        self._settling = False
        self._watchdog: Repeating | None = None

    @property
    def links(self) -> Links:
        """The netlink client of the running daemon (made when run() starts)."""
        if self._links is None:
            raise RuntimeError("the daemon's netlink client is made by run()")
        return self._links

    @property
    def interfaces(self) -> Interfaces:
        """The link watch of the running daemon (made when run() starts)."""
        if self._interfaces is None:
            raise RuntimeError("the daemon's link watch is made by run()")
        return self._interfaces

    # ------------------------------------------------------------------ RunnerDeps
    def drain(self) -> None:
        self.receiver.drain()

    def state_changed(self, runner: Runner) -> None:
        """A state changed: let its sync groups settle (through the runners), tell systemd."""
        if self._settling:
            return
        self._settling = True
        try:
            members = dict(self.runners)
            for g in self.config.sync_groups:
                if runner.name in g.instances:
                    groups.settle(groups.SyncGroup(g.name, g.instances), members, self.loop.time())
        finally:
            self._settling = False
        self.notifier.status(", ".join(f"{n}={r.router.state.value}"
                                       for n, r in self.runners.items()))

    # ------------------------------------------------------------------ life cycle
    def run(self) -> int:
        loop = self.loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reloader.on_sighup)
        loop.on_late = self._late
        try:
            self._start()
        except Exception as exc:      # any start-up failure: log, clean, exit 1
            log.error("startup failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._teardown()
            return 1
        loop.run()
        self._teardown()
        log.info("vmacd stopped")
        return self._exit

    def _start(self) -> None:
        from vmacd.control.api import ControlAPI
        from vmacd.control.commands import Dispatcher
        from vmacd.control.server import ControlServer

        g = self.config.global_
        self.starting = set(self.config.instance_names)
        self.control = ControlServer(self.loop, g.control_socket, Dispatcher(ControlAPI(self)))
        self.control.start()                            # answers from the first moment
        self._links = Links()
        names = set(self.config.instance_names)
        for left in self.links.adopt_or_clean(keep=names):
            log.warning("cleaned leftover of a previous run: %s %s (%s)", left.kind, left.ifname,
                        left.action)
        self.guardian = Guardian.start()
        self._clean_tables()
        if g.metrics_enabled:
            self.metrics.serve(self.loop, g.metrics_listen)
        self._interfaces = Interfaces(self)
        self.trackers.configure(self.config.instances)
        self._build_in_batches(list(self.config.instances))

    def _build_in_batches(self, todo: list[model.Instance]) -> None:
        """Build BUILD_BATCH instances, start them, and come back on the next iteration: the
        control socket and the first instances run while the rest is still being made."""
        batch, rest = todo[:BUILD_BATCH], todo[BUILD_BATCH:]
        for runner in self.build(batch):
            self.start_runner(runner)
        if rest:
            self.loop.call_soon(self._build_in_batches, rest)
            return
        gc.collect()
        gc.freeze()          # start-up objects live until exit: out of the collector's way
        self.schedule(self.config.global_.realtime_priority)
        self.notifier.ready(f"{len(self.runners)} instance(s)")
        self._watchdog = self.notifier.run_watchdog(self.loop)
        waiting = f"; waiting: {', '.join(sorted(self.waiting))}" if self.waiting else ""
        log.info("vmacd %s running: %s%s", __version__, ", ".join(self.runners) or "no instances",
                 waiting)

    def schedule(self, priority: int) -> None:
        """Real-time scheduling for the daemon and the guardian (linux/sched.py); 0: normal."""
        pids = [0] + ([self.guardian.pid] if self.guardian is not None else [])
        why = sched.set_realtime(pids, priority) if priority else sched.set_normal(pids)
        if why is not None:
            log.warning("cannot set %s scheduling (%s): running with the scheduling it had",
                        f"SCHED_RR priority {priority}" if priority else "normal", why)
        elif priority:
            log.info("real-time scheduling: SCHED_RR priority %d (daemon and guardian)", priority)

    def _clean_tables(self) -> None:
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

    def build(self, cfgs: Sequence[model.Instance]) -> list[Runner]:
        """Build runners for `cfgs`: those whose interface or address is missing wait (in
        `self.waiting`); any other failure raises at start-up, or is logged after it."""
        links = {link.name: link for link in self.links.links()}
        addrs = self.links.addresses()
        ready: list[tuple[model.Instance, Link, str]] = []
        for cfg in cfgs:
            self.starting.discard(cfg.name)
            parent = links.get(cfg.interface)
            primary = None if parent is None else self.links.primary_address(
                parent.index, cfg.family, addrs)
            if parent is None or primary is None:
                what = "IPv4 address" if cfg.family == 4 else "IPv6 link-local address"
                why = (f"interface {cfg.interface} does not exist" if parent is None
                       else f"interface {cfg.interface} has no {what} to advertise from")
                self.wait(cfg.name, why)
                continue
            ready.append((cfg, parent, primary))
        for cfg, _parent, _primary in ready:
            if cfg.vmac:
                self.sysctls.configure_parent(cfg.interface)
        specs = [VmacSpec(c.name, c.interface, c.vrid, c.family, c.vmac_mode, vmac_name(p.index, c))
                 for c, p, _a in ready if c.vmac]
        made = iter(self.links.create_many(specs)) if specs else iter(())
        self.links.prepare_vips([str(v) for c, _p, _a in ready for v in c.virtual_ips], known=addrs)
        out: list[Runner] = []
        for cfg, parent, primary in ready:
            vmac = next(made) if cfg.vmac else None
            try:
                if isinstance(vmac, LinkError):
                    raise vmac
                out.append(self._runner(cfg, parent, primary, vmac, addrs))
            except (LinkError, SocketError, SysctlError, NftError, OSError) as exc:
                if not isinstance(vmac, (LinkError, type(None))):
                    self.links.delete(vmac)        # a half-made instance leaves nothing behind
                if self._running():
                    log.error("instance %s could not start: %s", cfg.name, exc)
                    self.wait(cfg.name, f"could not start: {exc}")
                    continue
                raise
        return out

    def _running(self) -> bool:
        return self.control is not None and self._interfaces is not None and not self.starting

    def _runner(self, cfg: model.Instance, parent: Link, primary: str, vmac: Vmac | None,
                addrs: list[Addr]) -> Runner:
        import ipaddress

        proto = IPPROTO_AH if cfg.auth is not None and cfg.auth.type == "ah" else VRRP_PROTO
        multicast = not cfg.unicast_peers
        own = frozenset(ipaddress.ip_address(a.address) for a in addrs
                        if a.index == parent.index and a.proto != 112)
        runner: Runner | None = None
        try:
            runner = Runner(cfg, self, parent_index=parent.index, parent_mac=parent.mac,
                            primary=ipaddress.ip_address(primary), own=own, vmac=vmac,
                            sock=self.receiver.port(parent.name, parent.index, cfg.family, proto))
            self.receiver.route(runner.intake, cfg.vrid, parent.name, parent.index, cfg.family,
                                proto, multicast)
            if vmac is not None and cfg.vmac_mode == "private" and multicast:
                # private mode: our own vMAC's group traffic reaches only the macvlan
                self.receiver.route(runner.intake, cfg.vrid, vmac.ifname, vmac.ifindex,
                                    cfg.family, proto, True)
        except Exception:
            if runner is not None:
                self.receiver.unroute(runner.intake)
                runner.close()
            raise
        self.runners[cfg.name] = runner
        self.waiting.pop(cfg.name, None)
        return runner

    def wait(self, name: str, why: str) -> None:
        """`name` cannot run yet: it waits in init until its interface (or address) appears."""
        if self.waiting.get(name) != why:
            log.warning("%s: waiting: %s", name, why, extra={"instance": name})
        self.waiting[name] = why
        cfg = self.config.instance(name)
        self.metrics.instance(name, cfg.vrid, cfg.interface).interface_missing(True)

    def start_runner(self, runner: Runner, history: Sequence[Transition] = ()) -> None:
        """Initial conditions (link, trackers, a persistent drain), then Startup."""
        cfg = runner.cfg
        runner.router.history.extend(history)
        initial: list[object] = []
        if not self.interfaces.is_up(runner.parent_index):
            initial.append(LinkChanged(False))
        initial += self.trackers.initial(cfg, self.interfaces.is_up_by_name)
        if cfg.name in self.persisted_maintenance():
            initial.append(Maintenance(True, force=True))
            log.info("%s: maintenance on (persistent)", cfg.name, extra={"instance": cfg.name})
        runner.start(initial)

    def remove_runner(self, runner: Runner) -> None:
        self.receiver.unroute(runner.intake)
        try:
            runner.close()
        except Exception as exc:  # noqa: BLE001 - one instance's cleanup must not stop the rest
            log.error("%s: cleanup failed: %s", runner.name, exc)
        if self.runners.get(runner.name) is runner:
            del self.runners[runner.name]

    def shutdown_runners(self, runners: Sequence[Runner], reason: str,
                         done: Callable[[], None]) -> None:
        """Shut `runners` down (make-before-break) and call `done()` once all have let go, or
        when the longest handover bound (plus a grace) has passed."""
        if not runners:
            self.loop.call_soon(done)
            return
        left = {r.name for r in runners}
        finished: Deferred[None] = Deferred()

        def one_stopped(name: str, _none: None) -> None:
            left.discard(name)
            if not left:
                finished.resolve(None)

        def all_stopped(_none: None) -> None:
            timer.cancel()
            done()

        bound = max(r.cfg.advert_interval * 4 for r in runners) + STOP_GRACE
        timer = self.loop.call_later(bound, finished.resolve, None)
        finished.then(all_stopped)
        for r in runners:
            r.shutdown(reason).then(functools.partial(one_stopped, r.name))

    def stop(self) -> None:
        """SIGTERM/SIGINT: release every instance make-before-break, then exit."""
        if self._stopping:
            return
        self._stopping = True
        self.notifier.stopping("releasing mastership")
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.shutdown_runners(list(self.runners.values()), "SIGTERM", self._after_stop)

    def _after_stop(self) -> None:
        sets = [r.resources for r in self.runners.values()]
        for runner in list(self.runners.values()):
            self.remove_runner(runner)
        longest = sum(r.timeout for i in self.config.instances for r in i.resources)
        deadline = self.loop.time() + longest + DRAIN_GRACE

        def drained() -> None:        # resource stop commands and the last notify run to the end
            busy = self.procs.pending() or any(s.busy for s in sets)
            if busy and self.loop.time() < deadline:
                self.loop.call_later(0.05, drained)
                return
            if busy:
                log.warning("stop commands still running at exit: killed")
            self.loop.stop()

        drained()

    def _teardown(self) -> None:
        for runner in list(self.runners.values()):
            self.remove_runner(runner)
        self.trackers.close()
        if self.control is not None:
            self.control.stop()
        self.receiver.close()
        if self._interfaces is not None:
            self._interfaces.close()
        try:
            self._clean_tables()
        except NftError as exc:
            log.error("could not remove the nftables table: %s", exc)
        for path in self.sysctls.restore():
            log.warning("could not restore sysctl %s", path)
        self.procs.close()
        if self.guardian is not None:
            try:            # a clean stop: everything is released already, nothing to guard
                self.guardian.disarm()
            except GuardianError as exc:
                log.warning("%s", exc)
        self.metrics.close()
        if self._links is not None:
            self._links.close()
        self.loop.close()

    def _late(self, lateness: float) -> None:
        """Event-loop lateness (a stall): measured on every timer; logged beyond one interval."""
        self.metrics.stall(lateness)
        if lateness > 0.1 and self.runners:
            shortest = min(r.cfg.advert_interval for r in self.runners.values())
            if lateness > shortest:
                now = self.loop.time()
                if now - getattr(self, "_stall_logged", 0.0) >= 10.0:
                    self._stall_logged = now
                    log.warning("the daemon stalled for %.0f ms (longer than an advertisement "
                                "interval, %.0f ms): CPU starvation, SIGSTOP or a VM pause",
                                lateness * 1000, shortest * 1000)

    # ------------------------------------------------------------------ trackers, persistence
    def _on_track(self, instance: str, event: object) -> None:
        runner = self.runners.get(instance)
        if runner is not None:
            name, up = getattr(event, "name", ""), getattr(event, "up", None)
            if up is not None:
                runner.metrics.track(name, up)
            runner.handle(event)

    def persisted_maintenance(self) -> set[str]:
        path = os.path.join(self.config.global_.state_dir, MAINTENANCE_FILE)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            return {n for n, on in data.get("instances", {}).items() if on}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            return set()

    def persist_maintenance(self, name: str, on: bool) -> None:
        """Remember (or forget) a drain across restarts, atomically. Nothing is written when
        nothing changes (a drain ended that was never persisted leaves no file behind)."""
        state_dir = self.config.global_.state_dir
        before = self.persisted_maintenance()
        names = before | {name} if on else before - {name}
        if names == before:
            return
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        path = os.path.join(state_dir, MAINTENANCE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"instances": dict.fromkeys(sorted(names), True)}, fh)
        os.replace(tmp, path)


def vmac_name(parent_index: int, cfg: model.Instance) -> str:
    """Device name `vm<parent ifindex>.<vrid>.<4|6>`: unique per LAN, VRID and family."""
    return f"vm{parent_index}.{cfg.vrid}.{cfg.family}"[:15]
