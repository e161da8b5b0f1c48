"""FRR 8.4 vrrpd as a lab Router: zebra + vrrpd in the node's namespace with per-run paths.

FRR needs the macvlan prepared by the operator: created on the parent with the vMAC as address,
``addrgenmode random`` (set in a second command: the one-line ``ip link add ... addrgenmode random``
is refused by this iproute2/kernel), holding the VIP and up. vrrpd then protodowns it while backup.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

from ..util import LabError, kill, pid_alive, run, wait_until
from .base import Router

FRR_LIB = Path("/usr/lib/frr")
VTYSH = "/usr/bin/vtysh"
_STATUS = {"Master": "master", "Backup": "backup", "Initialize": "init"}


class Frr(Router):
    """zebra + vrrpd (foreground, -u root, per-run -z/--vty_socket/-i/-f); state via vtysh json."""

    name = "frr"

    def __init__(self) -> None:
        super().__init__()
        self.procs: dict[str, subprocess.Popen] = {}
        self._last = "init"

    @property
    def macvlan(self) -> str:
        """Name of the macvlan holding the vMAC and VIP."""
        assert self.cfg is not None
        return f"vrrp{self.cfg.family}-{self.cfg.vrid}"

    @property
    def vips(self) -> list[str]:
        """The virtual addresses in advert order: ``configure(..., vips=[...])`` or the one VIP."""
        assert self.cfg is not None
        return list(self.cfg.extra.get("vips") or [self.cfg.vip])

    def render(self) -> str:
        """The vrrpd.conf text for ``self.cfg``."""
        c = self.cfg
        assert c is not None and self.lab is not None
        n = c.vrid
        lines = [f"hostname {c.node}", f"interface {self.lab.ifname(c.node, c.lan)}",
                 f" vrrp {n} version {c.version}", f" vrrp {n} priority {c.priority}",
                 f" vrrp {n} advertisement-interval {c.advert_ms}"]
        lines += [f" vrrp {n} {'ip' if c.family == 4 else 'ipv6'} {v.split('/')[0]}" for v in self.vips]
        if not c.preempt:
            lines.append(f" no vrrp {n} preempt")
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        """Write zebra.conf and vrrpd.conf and prepare the macvlan FRR requires."""
        c = self.cfg
        assert c is not None
        if not c.vmac:
            raise ValueError("FRR vrrpd works only with a macvlan (vmac=True)")
        if c.track:
            raise ValueError("FRR vrrpd has no object tracking")
        if c.extra.get("unicast_peers"):
            raise ValueError("FRR 8.4 vrrpd has no unicast mode (multicast only)")
        (self.dir / "zebra.conf").write_text(f"hostname {c.node}\n")
        (self.dir / "vrrpd.conf").write_text(self.render())
        # the daemons drop to user frr (root is not in the frrvty group): give them the directory
        for path in (self.dir, *self.dir.iterdir()):
            shutil.chown(path, "frr", "frr")
        self._prepare_macvlan()

    def _prepare_macvlan(self) -> None:
        c, lab = self.cfg, self.lab
        assert c is not None and lab is not None
        ns, mv = lab.ns(c.node), self.macvlan
        parent = lab.ifname(c.node, c.lan)
        if mv in run(["ip", "-n", ns, "-br", "link"], check=True).stdout.split():
            return
        run(["ip", "-n", ns, "link", "add", mv, "link", parent, "type", "macvlan", "mode", "bridge"])
        run(["ip", "-n", ns, "link", "set", mv, "addrgenmode", "random"])
        run(["ip", "-n", ns, "link", "set", mv, "address", c.vmac_addr])
        plen = lab.topo.prefixlen(c.lan, c.family)
        for vip in self.vips:
            cidr = vip if "/" in vip else f"{vip}/{plen}"
            run(["ip", "-n", ns, f"-{c.family}", "addr", "add", cidr, "dev", mv])
        run(["ip", "-n", ns, "link", "set", mv, "up"])

    def _argv(self, daemon: str) -> list[str]:
        d = self.dir
        return [str(FRR_LIB / daemon), "-P", "0",
                "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid"),
                "-z", str(d / "zserv.api"), "--vty_socket", str(d),
                "--log", f"file:{d / (daemon + '.log')}", "--log-level", "info"]

    def start(self) -> None:
        """Start zebra, wait for its zserv socket, then vrrpd; return once vtysh answers."""
        assert self.lab is not None
        for daemon in ("zebra", "vrrpd"):
            (self.dir / f"{daemon}.pid").unlink(missing_ok=True)
            out = (self.dir / f"{daemon}.out").open("ab")
            self.procs[daemon] = self.lab.popen(self.node, self._argv(daemon), stdout=out,
                                                stderr=subprocess.STDOUT)
            out.close()
            sock = self.dir / ("zserv.api" if daemon == "zebra" else "vrrpd.vty")
            try:
                wait_until(lambda sock=sock, daemon=daemon:
                           sock.exists() or self.procs[daemon].poll() is not None,
                           10.0, what=f"{daemon} on {self.node}")
            except TimeoutError as exc:
                raise LabError(f"{exc}: {self.log_tail(daemon)}") from exc
            if self.procs[daemon].poll() is not None:
                raise LabError(f"{daemon} on {self.node} exited {self.procs[daemon].returncode}: "
                               f"{self.log_tail(daemon)}")
        wait_until(lambda: self._show() is not None, 10.0, what=f"vrrpd on {self.node} to answer")

    def stop(self) -> None:
        """SIGTERM vrrpd (it sends priority 0) then zebra; SIGKILL whatever outlives 5 s."""
        for daemon in ("vrrpd", "zebra"):
            proc = self.procs.get(daemon)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._last = "stopped"
        self.forget_crashdirs()

    def forget_crashdirs(self) -> None:
        """Remove /var/tmp/frr/DAEMON.PID of our dead daemons (left behind by SIGKILL)."""
        from ..lab import remove_frr_crashdirs
        remove_frr_crashdirs([p.pid for p in self.procs.values() if not pid_alive(p.pid)])

    def pids(self) -> dict[str, int]:
        """{"zebra": pid, "vrrpd": pid} of the live daemons."""
        return {d: p.pid for d, p in self.procs.items() if pid_alive(p.pid)}

    def vrrp_pids(self) -> list[int]:
        """vrrpd only (``kill``/``freeze`` leave zebra alone)."""
        return [p for d, p in self.pids().items() if d == "vrrpd"]

    def kill_daemon(self) -> None:
        """SIGKILL vrrpd; zebra (part of "the box") keeps running."""
        for pid in self.vrrp_pids():
            kill(pid, signal.SIGKILL)

    def _show(self) -> list | None:
        assert self.lab is not None
        cp = self.lab.run(self.node, [VTYSH, "--vty_socket", str(self.dir), "-c", "show vrrp json"],
                          check=False, timeout=5)
        if cp.returncode != 0:
            return None
        try:
            return json.loads(cp.stdout or "[]")
        except ValueError:
            return None

    def state(self) -> str:
        """State of our VRID from ``show vrrp json`` ("stopped" when vrrpd is not running)."""
        c = self.cfg
        assert c is not None
        if "vrrpd" not in self.pids():
            return "stopped"
        data = self._show()
        if data is None:
            return "unknown"
        for vr in data:
            if vr.get("vrid") == c.vrid:
                fam = vr.get("v4" if c.family == 4 else "v6", {})
                st = _STATUS.get(fam.get("status", ""), "unknown")
                if st != self._last:
                    self._last = st
                    self._record(st)
                return st
        return "unknown"

    def log_tail(self, daemon: str = "vrrpd", n: int = 15) -> str:
        """Last lines of *daemon*'s log (and its stdout) of this run."""
        text = ""
        for name in (f"{daemon}.log", f"{daemon}.out"):
            try:
                text += "\n".join((self.dir / name).read_text().splitlines()[-n:]) + "\n"
            except OSError:
                pass
        return text
