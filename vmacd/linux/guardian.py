"""Hard-death guard (SPEC §3): when the daemon dies, its vMACs go down at once.

The daemon starts ``python -m vmacd.linux.guardian --fd N`` early (fork+exec, its own session, so
a signal to the daemon's process group does not reach it) and keeps the other end of a
socketpair. It tells the guardian, one JSON object per line, what it owns:

    {"op": "own", "ifindex": 7}            a vMAC macvlan: set DOWN if the daemon dies
    {"op": "disown", "ifindex": 7}
    {"op": "vip", "ifindex": 2, "vip": "192.0.2.254/24"}     vmac=false: remove if it dies
    {"op": "unvip", "ifindex": 2, "vip": "192.0.2.254/24"}
    {"op": "disarm"}                       clean shutdown: exit without touching anything

The kernel closes the daemon's end whatever kills it (SIGKILL, OOM, a crash), so the guardian sees
EOF at once, takes every owned vMAC down and removes the VIPs with an already open netlink
socket, then exits. It ignores SIGTERM/SIGINT/SIGHUP: systemd with ``KillMode=mixed`` sends
SIGTERM only to the daemon, whose make-before-break handover must not be cut short; the guardian
follows it out through EOF. See docs/linux.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

READY = b"ready\n"


class GuardianError(Exception):
    """The guardian could not be started or is gone; the message says which."""


class Guardian:
    """Daemon side: start the guardian process and keep it informed."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen) -> None:
        self.sock = sock
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, timeout: float = 10.0) -> Guardian:
        """Spawn the guardian and wait until it has its netlink socket open."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vmacd.linux.guardian", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise GuardianError(f"cannot start the guardian: {exc.strerror}") from None
        finally:
            theirs.close()
        ours.settimeout(timeout)
        try:
            line = ours.recv(len(READY))
        except OSError:
            line = b""
        if line != READY:
            proc.kill()
            proc.wait()
            ours.close()
            raise GuardianError("the guardian did not come up (see its stderr)")
        ours.settimeout(2.0)
        return cls(ours, proc)

    def _send(self, msg: dict) -> None:
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise GuardianError(f"the guardian is gone ({exc.strerror}); restart it") from None

    def own(self, ifindex: int) -> None:
        """Set `ifindex` DOWN if the daemon dies."""
        self._send({"op": "own", "ifindex": ifindex})

    def disown(self, ifindex: int) -> None:
        """Forget `ifindex` (the vMAC was deleted)."""
        self._send({"op": "disown", "ifindex": ifindex})

    def vip(self, ifindex: int, vip: str) -> None:
        """Remove `vip` from `ifindex` if the daemon dies (vmac=false mode)."""
        self._send({"op": "vip", "ifindex": ifindex, "vip": vip})

    def unvip(self, ifindex: int, vip: str) -> None:
        """Forget a VIP (it was released normally)."""
        self._send({"op": "unvip", "ifindex": ifindex, "vip": vip})

    def alive(self) -> bool:
        """The guardian process still runs."""
        return self.proc.poll() is None

    def disarm(self, timeout: float = 2.0) -> None:
        """Clean shutdown: the guardian exits and touches nothing."""
        try:
            self._send({"op": "disarm"})
        except GuardianError:
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- guardian process ----------------------------------------------------------------------
def _apply(state: dict, msg: dict) -> bool:
    """Update the owned set from one message; True when disarmed."""
    op = msg.get("op")
    if op == "disarm":
        return True
    idx = int(msg.get("ifindex", 0))
    if op == "own":
        state["links"].add(idx)
    elif op == "disown":
        state["links"].discard(idx)
    elif op == "vip":
        state["vips"].add((idx, str(msg["vip"])))
    elif op == "unvip":
        state["vips"].discard((idx, str(msg["vip"])))
    return False


def _take_down(ipr: object, state: dict) -> None:
    """The daemon died: vMACs down first (stops the frames), then VIPs off."""
    import ipaddress

    for idx in sorted(state["links"]):
        try:
            ipr.link("set", index=idx, state="down")
        except Exception as exc:  # noqa: BLE001 - keep going with the others
            print(f"vmacd-guardian: ifindex {idx} down failed: {exc}", file=sys.stderr)
    owned = [(idx, f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}") for idx in sorted(state["links"])
             for m in _addrs(ipr, idx) if m.get("IFA_PROTO") == state["mark"]]
    for idx, vip in owned + sorted(state["vips"]):
        iface = ipaddress.ip_interface(vip)
        try:
            ipr.addr("del", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except Exception as exc:  # noqa: BLE001
            print(f"vmacd-guardian: removing {vip} failed: {exc}", file=sys.stderr)


def _addrs(ipr: object, idx: int) -> list:
    try:
        return list(ipr.get_addr(index=idx))
    except Exception:  # noqa: BLE001 - a vanished link has no addresses to remove
        return []


def serve(fd: int) -> int:
    """Guardian main loop on the inherited socket `fd`."""
    from pyroute2 import IPRoute

    # imported now: nothing slow once the daemon dies
    from vmacd.linux.netlink import VIP_PROTO

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    ipr = IPRoute()
    state: dict = {"links": set(), "vips": set(), "mark": VIP_PROTO}
    sock.sendall(READY)
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            t0 = time.monotonic()
            _take_down(ipr, state)
            took = (time.monotonic() - t0) * 1000
            print(f"vmacd-guardian: daemon gone; {len(state['links'])} vMAC(s) down and their "
                  f"VIPs removed, {len(state['vips'])} parent VIP(s) removed in {took:.1f} ms",
                  file=sys.stderr)
            return 0
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                if _apply(state, json.loads(line)):
                    return 0
            except (ValueError, KeyError, TypeError) as exc:
                print(f"vmacd-guardian: bad message {line!r}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vmacd.linux.guardian --fd N``."""
    parser = argparse.ArgumentParser(prog="vmacd-guardian")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        os.fstat(args.fd)
    except OSError:
        parser.exit(2, f"vmacd-guardian: fd {args.fd} is not open\n")
    return serve(args.fd)


if __name__ == "__main__":
    sys.exit(main())
