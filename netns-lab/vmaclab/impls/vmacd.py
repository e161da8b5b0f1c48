"""vmacd as a lab Router: generated TOML, `vmacd run` in the node's namespace, state via its socket.

State changes are reported through vmacd's notify script into a fifo (the same line format as
keepalived's notify_fifo, so the timeline of a SIGKILLed daemon is kept); `state()` asks the
control socket, which is exact.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from ..util import LabError, kill, pid_alive, wait_until
from .base import Router
from .fifo import NotifyFifo

_NOTIFY = """#!/bin/sh
# vmaclab: vmacd notify (TYPE NAME STATE PRIORITY) -> the lab's fifo
printf 'INSTANCE %s %s %s\\n' "$2" "$3" "$4" > {fifo}
"""

class Vmacd(NotifyFifo, Router):
    """`vmacd run -c <workdir>/vmacd.toml` per node; a guardian child is part of the daemon."""

    name = "vmacd"

    def __init__(self) -> None:
        super().__init__()
        self.proc: subprocess.Popen | None = None
        self._fifo_init()

    # -- paths -----------------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        return self.dir / "vmacd.sock"

    @property
    def conf_path(self) -> Path:
        return self.dir / "vmacd.toml"

    # -- config ----------------------------------------------------------------------------------
    def render(self) -> str:
        """The vmacd.toml text for ``self.cfg`` (accept = true: the lab's probes go to the VIP).

        ``virtual_ips``: ``extra["vips"]`` in that order when given, else the VIP (IPv6: after
        ``fe80::1``). Instance keys in ``extra`` (unicast_peers, ipv6_link_local_first, ...) are
        written as given; ``extra["realtime_priority"]`` goes to ``[global]``.
        """
        c = self.cfg
        assert c is not None and self.lab is not None
        plen = self.lab.topo.prefixlen(c.lan, c.family)
        iface = self.lab.ifname(c.node, c.lan)
        x = c.extra
        vips = [v if "/" in v else f"{v}/{plen}" for v in x.get("vips") or [c.vip]]
        if c.family == 6 and not x.get("vips"):
            vips.insert(0, "fe80::1/64")        # the VR link-local first (RFC 9568 §5.2.9)
        lines = ["[global]", f'node = "{c.node}"', f'control_socket = "{self.socket_path}"',
                 f'metrics_listen = "{x.get("metrics_listen", "127.0.0.1:9650")}"',
                 f'notify = "{self.dir / "notify.sh"}"',
                 f'state_dir = "{self.dir / "state"}"',
                 *([f"realtime_priority = {int(x['realtime_priority'])}"]
                   if "realtime_priority" in x else []),
                 "", "[[instance]]", 'name = "lan"',
                 f'interface = "{iface}"', f"vrid = {c.vrid}", f"version = {c.version}",
                 f"priority = {c.priority}", f'advert_interval = "{c.advert_ms}ms"',
                 "virtual_ips = [" + ", ".join(f'"{v}"' for v in vips) + "]",
                 f"vmac = {str(c.vmac).lower()}", f"preempt = {str(c.preempt).lower()}",
                 f"accept = {str(x.get('accept', True)).lower()}"]
        for key in ("preempt_delay", "startup_delay", "graceful_handover", "garp_repeat",
                    "vmac_mode", "v3_checksum_pseudoheader", "v3_checksum_strict",
                    "ipv6_link_local_first", "ipv6_link_local_first_strict",
                    "unicast_peers", "warn_after", "garp_refresh"):
            if key in x:
                val = x[key]
                lines.append(f"{key} = {json.dumps(val) if not isinstance(val, bool) else str(val).lower()}")
        auth = x.get("auth")
        if isinstance(auth, dict):          # {"type": "hmac-sha256", "key": "..."}
            lines.append('auth = "lab"')
        resources = x.get("resources") or {}  # {name: {"start": [...], "stop": [...]}}
        if resources:
            lines.append(f"resources = {json.dumps(list(resources))}")
        if c.track:
            lines.append(f'track_scripts = [{{ name = "svc", weight = {c.track.get("weight", 0)} }}]')
            lines += ["", "[track_script.svc]",
                      f'command = ["/usr/bin/test", "-e", "{c.track["file"]}"]',
                      f'interval = "{c.track.get("interval_ms", 200)}ms"', 'timeout = "1s"',
                      "rise = 1", "fall = 1"]
        for name, res in resources.items():      # every key as given (lists, strings, numbers)
            lines += ["", f"[resource.{name}]"]
            lines += [f"{key} = {json.dumps(val)}" for key, val in {"timeout": "5s", **res}.items()]
        if isinstance(auth, dict):
            lines += ["", "[auth.lab]", f'type = "{auth["type"]}"']
            if auth.get("key") is not None:
                lines.append(f"key = {json.dumps(auth['key'])}")
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.conf_path.write_text(self.render())
        self.conf_path.chmod(0o600)         # vmacd refuses inline keys in a world-readable file
        self._make_fifo()
        script = self.dir / "notify.sh"
        script.write_text(_NOTIFY.format(fifo=self.fifo_path))
        script.chmod(0o755)

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.lab is not None
        self._open_fifo()
        log = (self.dir / "vmacd.log").open("ab")
        argv = [sys.executable, "-m", "vmacd", "run", "-c", str(self.conf_path),
                "--log-format", "text", "--log-level", self.cfg.extra.get("log_level", "info")]
        self.proc = self.lab.popen(self.node, argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_until(lambda: self.proc.poll() is not None or self._ask("status") is not None,
                       15.0, interval=0.05, what=f"vmacd on {self.node}")
        except TimeoutError as exc:
            raise LabError(f"{exc}; log: {self.log_tail()}") from exc
        if self.proc.poll() is not None:
            raise LabError(f"vmacd on {self.node} exited {self.proc.returncode}: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (priority 0, make-before-break), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.crash_kill()
                self.proc.wait(timeout=5)
        self._close_fifo()

    def pids(self) -> dict[str, int]:
        """{"vmacd": daemon, "guardian": its hard-death guard} of the live processes."""
        out: dict[str, int] = {}
        if self.proc is None or not pid_alive(self.proc.pid) or self.proc.poll() is not None:
            return out
        out["vmacd"] = self.proc.pid
        for child in _children(self.proc.pid):     # notify/track scripts are children too
            if _is_guardian(child):
                out["guardian"] = child
        return out

    def vrrp_pids(self) -> list[int]:
        """The daemon only: `kill` must leave the guardian to do its job."""
        return [p for r, p in self.pids().items() if r == "vmacd"]

    def term_pids(self) -> list[int]:
        return self.vrrp_pids()

    def kill_daemon(self) -> None:
        """`kill`: SIGKILL the daemon only; the guardian must survive to take the vMACs down."""
        kill(self.pids().get("vmacd"), signal.SIGKILL)

    def crash_kill(self) -> None:
        """The box is gone: daemon and guardian die at the same instant."""
        p = self.pids()
        kill(p.get("guardian"), signal.SIGKILL)
        kill(p.get("vmacd"), signal.SIGKILL)

    def state(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return "stopped"
        reply = self._ask("status")
        if reply and reply.get("instances"):
            return reply["instances"][0]["state"]
        return self._state

    def status(self) -> dict | None:
        """The daemon's full status reply (None when it does not answer)."""
        return self._ask("status")

    def control(self, req: dict) -> dict | None:
        """Send one control request; None when the daemon does not answer."""
        from vmacd.cli.ctl import Unreachable, request

        try:
            return request(str(self.socket_path), req, timeout=2.0)
        except (Unreachable, OSError, ValueError):
            return None

    def _ask(self, cmd: str) -> dict | None:
        return self.control({"cmd": cmd})

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join((self.dir / "vmacd.log").read_text().splitlines()[-n:])
        except OSError:
            return ""


def _is_guardian(pid: int) -> bool:
    try:
        return b"vmacd.linux.guardian" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]
