"""Debian's lighttpd as a lab node's web service, and the commands a cluster manager runs for it.

``WebServer(lab, "a")`` writes into the node's work directory:

* ``lighttpd.conf`` -- port 80 on every address, pid file, error log, docroot, ``server.tag``
  naming the node (the page itself may come from shared storage);
* ``www/index.html`` -- ``this is node a``;
* ``web-ctl`` -- ``web-ctl stop`` and ``web-ctl status`` (this module's command line); both find
  the server by its pid file, or by its command line in /proc when the pid file is gone.

Resource commands for vmacd: start is lighttpd itself (``lighttpd -f CONF`` returns once the
server listens, and fails while another server holds port 80), stop is ``web-ctl stop`` (INT:
lighttpd's graceful shutdown, which closes the listening socket and finishes the requests it
has accepted, so a planned handover cuts no answer short; KILL after a grace period; success when
nothing of this config runs), monitor is
``web-ctl status`` (fails when the server of this config is dead or does not answer
``GET /`` on 127.0.0.1 with 200 within its timeout).

Command line (inside the node's namespace)::

    python -m vmaclab.websvc stop|status --conf CONF [--timeout S]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import Lab

LIGHTTPD = "/usr/sbin/lighttpd"
PORT = 80
STOP_GRACE_S = 5.0

_CONF = """\
# lighttpd for lab node {node} (vmaclab): port {port} on every address
server.document-root = "{docroot}"
server.port = {port}
server.pid-file = "{pidfile}"
server.errorlog = "{errorlog}"
server.tag = "lighttpd node {node}"
server.max-keep-alive-requests = 0
server.graceful-shutdown-timeout = 2
index-file.names = ("index.html")
mimetype.assign = (".html" => "text/html", ".txt" => "text/plain")
"""

_CTL = """\
#!/bin/sh
# lighttpd of lab node {node}: web-ctl stop | status
exec {python} -m vmaclab.websvc "$1" --conf {conf}
"""


def page(node: str) -> str:
    """The node's own page, as the seed's two web servers showed it."""
    return f"this is node {node}\n"


class WebServer:
    """lighttpd of one lab node; files under ``lab.workdir(node)``; runs in the node's namespace."""

    def __init__(self, lab: Lab, node: str, docroot: Path | None = None) -> None:
        if not os.access(LIGHTTPD, os.X_OK):
            raise FileNotFoundError(f"{LIGHTTPD} not found: install Debian's lighttpd (make apt-lab)")
        self.lab, self.node = lab, node
        self.dir = lab.workdir(node)
        self.conf = self.dir / "lighttpd.conf"
        self.pidfile = self.dir / "lighttpd.pid"
        self.ctl = self.dir / "web-ctl"
        self.docroot = docroot or self.dir / "www"
        self.write()

    def write(self) -> None:
        """Write the config, the node's page (unless the docroot is elsewhere) and web-ctl."""
        own = self.dir / "www"
        own.mkdir(exist_ok=True)
        (own / "index.html").write_text(page(self.node))
        self.conf.write_text(_CONF.format(node=self.node, port=PORT, docroot=self.docroot,
                                          pidfile=self.pidfile,
                                          errorlog=self.dir / "lighttpd.log"))
        self.ctl.write_text(_CTL.format(node=self.node, python=sys.executable, conf=self.conf))
        self.ctl.chmod(0o755)

    # -- the resource commands ---------------------------------------------------------------
    @property
    def start_argv(self) -> list[str]:
        return [LIGHTTPD, "-f", str(self.conf)]

    @property
    def stop_argv(self) -> list[str]:
        return [str(self.ctl), "stop"]

    @property
    def monitor_argv(self) -> list[str]:
        return [str(self.ctl), "status"]

    # -- the lab's own hands -----------------------------------------------------------------
    def start(self) -> None:
        """Start lighttpd in the node's namespace (the lab, not vmacd, runs it: loadshare)."""
        self.lab.run(self.node, self.start_argv)

    def stop(self) -> None:
        self.lab.run(self.node, self.stop_argv)

    def pid(self) -> int | None:
        """The pid of this config's running lighttpd, or None."""
        return running_pid(self.conf)

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Signal the running server (the ``web-kill`` event); returns its pid or None."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, sig)
        return pid


# -- web-ctl ---------------------------------------------------------------------------------
def _conf_value(conf: Path, key: str) -> str:
    m = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', conf.read_text(), re.MULTILINE)
    if not m:
        raise ValueError(f"{conf}: no {key}")
    return m.group(1)


def _is_server(pid: int, conf: Path) -> bool:
    """*pid* is a live lighttpd started with *conf*."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and argv[0].endswith(b"lighttpd") and os.fsencode(str(conf)) in argv


def running_pid(conf: Path) -> int | None:
    """The running lighttpd of *conf*: the pid file's, else found in /proc (a second lighttpd that
    fails to bind removes the pid file of the one that runs)."""
    try:
        pid = int(Path(_conf_value(conf, "server.pid-file")).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    if pid is not None and _is_server(pid, conf):
        return pid
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _is_server(int(entry.name), conf):
            return int(entry.name)
    return None


def stop(conf: Path, grace_s: float = STOP_GRACE_S) -> int:
    """INT the server (a graceful shutdown), KILL it after *grace_s*; 0 once none of this config
    runs."""
    pid = running_pid(conf)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while running_pid(conf) == pid and time.monotonic() < deadline:
            time.sleep(0.01)
        if running_pid(conf) == pid:
            os.kill(pid, signal.SIGKILL)
            while running_pid(conf) == pid:
                time.sleep(0.01)
    Path(_conf_value(conf, "server.pid-file")).unlink(missing_ok=True)
    return 0


def status(conf: Path, timeout_s: float) -> tuple[int, str]:
    """(0, "ok") when this config's server runs and answers GET / with 200 on 127.0.0.1."""
    if running_pid(conf) is None:
        return 1, "not running"
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            head = s.recv(64)
    except OSError as exc:
        return 1, f"no answer on 127.0.0.1:{PORT}: {exc}"
    if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        return 1, f"bad answer: {head[:32]!r}"
    return 0, "ok"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="web-ctl", description="stop or check a lab node's lighttpd")
    ap.add_argument("action", choices=("stop", "status"))
    ap.add_argument("--conf", required=True, type=Path)
    ap.add_argument("--timeout", type=float, default=1.0, help="status: seconds for the answer")
    args = ap.parse_args(argv)
    if args.action == "stop":
        return stop(args.conf)
    code, why = status(args.conf, args.timeout)
    print(why, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())

