"""keepalived 2.2.x as a lab Router: generated config, foreground daemon, state via notify_fifo."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from ..util import LabError, kill, pid_alive, read_pidfile, wait_until
from .base import Router
from .fifo import NotifyFifo

KEEPALIVED = "/usr/sbin/keepalived"

class Keepalived(NotifyFifo, Router):
    """keepalived -P -n -l -D with per-run pid files; notify_fifo read by a thread gives state().

    ``configure(..., vips=[...])`` lists the ``virtual_ipaddress`` block in that order (default: the
    one VIP); ``unicast_peers=[...]`` adds a ``unicast_peer`` block (unicast mode).
    """

    name = "keepalived"

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen | None = None
        self._fifo_init()

    # -- paths -----------------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        """keepalived.conf of this run."""
        return self.dir / "keepalived.conf"

    def _pidfile(self, role: str) -> Path:
        return self.dir / f"keepalived-{role}.pid"

    # -- config ----------------------------------------------------------------------------------
    def render(self) -> str:
        """The keepalived.conf text for ``self.cfg``."""
        c = self.cfg
        assert c is not None and self.lab is not None
        adv = c.advert_ms / 1000
        adv_txt = f"{adv:g}" if c.version == 3 else str(int(adv))
        iface = self.lab.ifname(c.node, c.lan)
        plen = self.lab.topo.prefixlen(c.lan, c.family)
        # script_user before notify_fifo: a reload parses notify_fifo with the script user known
        # so far, and with the default one (absent) keepalived 2.2.7 drops the fifo for good
        lines = ["global_defs {", f"  router_id {c.node}", "  script_user root",
                 f"  notify_fifo {self.fifo_path}", "  enable_script_security",
                 f"  vrrp_version {c.version}", "}"]
        track = ""
        if c.track:
            lines += [f"vrrp_script chk_{c.vrid} {{",
                      f"  script \"/usr/bin/test -e {c.track['file']}\"",
                      f"  interval {c.track.get('interval', 1)}", f"  weight {c.track.get('weight', 0)}",
                      "  fall 1", "  rise 1", "}"]
            track = f"  track_script {{\n    chk_{c.vrid}\n  }}"
        lines += [f"vrrp_instance VI_{c.vrid} {{", "  state BACKUP", f"  interface {iface}",
                  f"  virtual_router_id {c.vrid}", f"  priority {c.priority}",
                  f"  advert_int {adv_txt}", f"  version {c.version}"]
        if c.vmac:
            lines.append(f"  use_vmac vrrp{c.family}.{c.vrid}")
        if not c.preempt:
            lines.append("  nopreempt")
        if track:
            lines.append(track)
        peers = c.extra.get("unicast_peers") or ()
        if peers:       # keepalived then refuses multicast adverts ("Expected unicast packet")
            lines += ["  unicast_peer {", *(f"    {p}" for p in peers), "  }"]
        vips = c.extra.get("vips") or [c.vip]
        lines += ["  virtual_ipaddress {", *(f"    {v if '/' in v else f'{v}/{plen}'}" for v in vips),
                  "  }", "}"]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        """Write keepalived.conf and the notify fifo into the work directory."""
        self.conf_path.write_text(self.render())
        self._make_fifo()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start keepalived in the node's namespace; returns once the VRRP child runs."""
        assert self.lab is not None
        for role in ("main", "vrrp"):
            self._pidfile(role).unlink(missing_ok=True)
        self._open_fifo()
        log = (self.dir / "keepalived.log").open("ab")
        argv = [KEEPALIVED, "-P", "-n", "-l", "-D", "-G", "-f", str(self.conf_path),
                "-p", str(self._pidfile("main")), "-r", str(self._pidfile("vrrp")),
                "-c", str(self._pidfile("checkers")), "-i", self.lab.prefix + self.node]
        self.proc = self.lab.popen(self.node, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_until(lambda: self.proc.poll() is not None or "vrrp" in self.pids(), 10.0,
                       what=f"keepalived on {self.node}")
        except TimeoutError as exc:
            raise LabError(f"{exc}; log: {self.log_tail()}") from exc
        if self.proc.poll() is not None:
            raise LabError(f"keepalived on {self.node} exited {self.proc.returncode}: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM keepalived (graceful: priority 0), SIGKILL after 5 s; stop the fifo reader."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                for pid in self.pids().values():
                    kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._close_fifo()

    def pids(self) -> dict[str, int]:
        """{"keepalived": parent, "vrrp": VRRP child} of the live processes."""
        out = {}
        if self.proc is not None and pid_alive(self.proc.pid):
            out["keepalived"] = self.proc.pid
        child = read_pidfile(self._pidfile("vrrp")) if self.lab else None
        if child and pid_alive(child):
            out["vrrp"] = child
        return out

    def vrrp_pids(self) -> list[int]:
        """The VRRP child only (``kill``: the parent would respawn it)."""
        return [p for r, p in self.pids().items() if r == "vrrp"] or list(self.pids().values())

    def term_pids(self) -> list[int]:
        """The parent: it stops the VRRP child gracefully (priority 0)."""
        return [p for r, p in self.pids().items() if r == "keepalived"]

    def crash_kill(self) -> None:
        """SIGSTOP the parent, SIGKILL the child, then the parent (else the child exits gracefully)."""
        p = self.pids()
        kill(p.get("keepalived"), signal.SIGSTOP)
        kill(p.get("vrrp"), signal.SIGKILL)
        kill(p.get("keepalived"), signal.SIGKILL)

    def state(self) -> str:
        """Last state keepalived wrote to its notify fifo ("stopped" once no process runs)."""
        if self.proc is not None and not self.pids():
            return "stopped"
        return self._state

    def log_tail(self, n: int = 15) -> str:
        """Last lines of keepalived's log of this run."""
        try:
            return "\n".join((self.dir / "keepalived.log").read_text().splitlines()[-n:])
        except OSError:
            return ""
