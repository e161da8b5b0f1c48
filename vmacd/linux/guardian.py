"""The guardian: when the daemon dies, it hands mastership over as SIGTERM would.

The daemon starts ``python3 -I -S -m vmacd.linux.guardian --fd N`` early (its own session, so a
signal to the daemon's process group does not reach it; isolated and without site-packages, so
it costs little memory) and keeps the other end of a socketpair. It tells the guardian, one
message each (a dict, `marshal`led after its length: both ends are the same interpreter, and the
guardian needs neither `json` nor `re`), what to do for each instance it may hold:

    {"op": "own", "spec": {...}}        Runner.guard_spec(): the device, the VRID, the priority-0
                                         frame (or what computes it), the handover bound, the
                                         stop commands of exclusive resources
    {"op": "disown", "ifindex": 7, "instance": "lan"}
    {"op": "vip", "ifindex": 2, "vip": "192.0.2.254/24"}     vmac = false: remove if it dies
    {"op": "unvip", "ifindex": 2, "vip": "192.0.2.254/24"}
    {"op": "disarm"}                     clean shutdown: exit without touching anything

The kernel closes the daemon's end whatever kills it (SIGKILL, OOM, abort), so the guardian sees
EOF at once. Then, for every instance whose device is up (it is master):
1. exclusive resources (shared storage) are stopped first, bounded by their timeouts;
2. a priority-0 advertisement goes out from the vMAC (RFC 9568 §6.4.3: a backup takes over after
   Skew_Time) — while the VIPs stay, so the client loses nothing (make-before-break);
3. when another router's advertisement for that VRID is heard, or the handover bound passes, the
   vMAC goes down and the VIPs are removed: nothing leaves the vMAC afterwards.
It ignores SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGABRT (systemd's watchdog abort): only the
daemon's death moves it. docs/linux.md has the design.
"""
from __future__ import annotations

import marshal
import os
import select
import signal
import socket
import struct
import sys
import time

from vmacd.linux import rtnl

TYPE_CHECKING = False           # not typing's: the guardian does without `typing` (~0.9 MB)
if TYPE_CHECKING:
    import subprocess
    from typing import Any, NotRequired, TypedDict

READY = b"ready\n"
_LEN = struct.Struct("=I")      # each message: its length, then marshal.dumps() of a dict
IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT,
           signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2)


class GuardianError(Exception):
    """The guardian could not be started or is gone; the message says which."""


if TYPE_CHECKING:
    class GuardSpec(TypedDict):
        """What the guardian needs to hand one instance over (Runner.guard_spec()), sent marshalled."""

        instance: str
        ifindex: int                 # the device the frames leave from (the vMAC, or the parent)
        vmac: bool
        parent: int
        family: int
        vrid: int
        version: int
        primary: str
        interval_cs: int
        vips: list[str]
        src_mac: str
        bound: float                 # seconds to wait for a successor
        peers: list[str]
        stop: list[list[str]]        # the stop commands of exclusive resources, in order
        auth: str
        key: NotRequired[str]        # hmac-sha256 / ah: the key (hex) to compute the frame with
        pseudo: NotRequired[bool]
        addresses: NotRequired[list[str]]
        frame: NotRequired[str]      # other auth types: the priority-0 frame (hex), prebuilt


    #: One decoded message (module docstring).
    Message = dict[str, Any]


class Guardian:
    """Daemon side: start the guardian process and keep it informed."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        self.sock = sock
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, timeout: float = 10.0) -> Guardian:
        """Spawn the guardian and wait until it has its netlink socket open."""
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        boot = (f"import sys; sys.path.insert(0, {home!r}); "
                "from vmacd.linux.guardian import main; sys.exit(main())")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", boot, "--fd", str(theirs.fileno())],
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

    def _send(self, msg: dict[str, object]) -> None:
        try:
            data = marshal.dumps(msg)
            self.sock.sendall(_LEN.pack(len(data)) + data)
        except OSError as exc:
            raise GuardianError(f"the guardian is gone ({exc.strerror}); restart it") from None

    def own(self, spec: GuardSpec) -> None:
        """Hand `spec` (Runner.guard_spec()) over if the daemon dies."""
        self._send({"op": "own", "spec": spec})

    def disown(self, ifindex: int, instance: str) -> None:
        self._send({"op": "disown", "ifindex": ifindex, "instance": instance})

    def vip(self, ifindex: int, vip: str) -> None:
        """Remove `vip` from `ifindex` if the daemon dies (vmac = false mode)."""
        self._send({"op": "vip", "ifindex": ifindex, "vip": vip})

    def unvip(self, ifindex: int, vip: str) -> None:
        self._send({"op": "unvip", "ifindex": ifindex, "vip": vip})

    def disarm(self, timeout: float = 2.0) -> None:
        """Clean shutdown: the guardian exits and touches nothing."""
        import subprocess

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
class _State:
    def __init__(self) -> None:
        self.specs: dict[tuple[int, str], GuardSpec] = {}
        self.vips: set[tuple[int, str]] = set()

    def apply(self, msg: Message) -> bool:
        """Update from one message; True when disarmed."""
        op = msg.get("op")
        if op == "disarm":
            return True
        if op == "own":
            spec = msg["spec"]
            self.specs[(int(spec["ifindex"]), str(spec["instance"]))] = spec
            if spec.get("auth") in ("hmac-sha256", "ah"):
                import vmacd.core.wire  # noqa: F401 - imported now: nothing slow once it dies
        elif op == "disown":
            self.specs.pop((int(msg["ifindex"]), str(msg["instance"])), None)
        elif op == "vip":
            self.vips.add((int(msg["ifindex"]), str(msg["vip"])))
        elif op == "unvip":
            self.vips.discard((int(msg["ifindex"]), str(msg["vip"])))
        return False


def _say(text: str) -> None:
    print(f"vmacd-guardian: {text}", file=sys.stderr, flush=True)


def _priority_zero(spec: GuardSpec) -> bytes:
    """The priority-0 frame: prebuilt, or computed now with a fresh counter (hmac-sha256, AH)."""
    if "frame" in spec:
        return bytes.fromhex(spec["frame"])
    import ipaddress

    from vmacd.core import auth, wire
    key = auth.AuthSpec(spec["auth"], bytes.fromhex(spec["key"]))
    adv = wire.Advertisement(spec["version"], spec["vrid"], 0, spec.get("interval_cs", 100),
                             tuple(ipaddress.ip_address(a) for a in spec["addresses"]))
    if spec["auth"] == "ah":       # tenths since 2024: ahead of every sequence the daemon sent
        counter = int((time.time() - 1704067200) * 10) % auth.AH_SEQ_MAX or 1
    else:                          # microseconds: ahead of the daemon's counter (seeded alike)
        counter = time.time_ns() // 1000
    dst = wire.VRRP_GROUP_V4 if spec["family"] == 4 else wire.VRRP_GROUP_V6
    packet = wire.build_ip_packet(adv, src=spec["primary"], dst=dst, auth=key, counter=counter,
                                  pseudo_header=spec.get("pseudo", True))
    return wire.build_frame(spec["src_mac"], packet)


def _listener(family: int, parents: set[int]) -> socket.socket | None:
    """A raw socket that hears VRRP on the parents (joined to the group on each)."""
    try:
        sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_RAW,
                             112)
        sock.setblocking(False)
        for idx in parents:
            if family == 4:
                mreq = struct.pack("4s4si", socket.inet_aton("224.0.0.18"), b"\0" * 4, idx)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            else:
                mreq = socket.inet_pton(socket.AF_INET6, "ff02::12") + struct.pack("@I", idx)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        return sock
    except OSError as exc:
        _say(f"cannot listen for the successor (IPv{family}): {exc.strerror}")
        return None


def _successors(sock: socket.socket, family: int) -> list[tuple[int, str]]:
    """(vrid, source) of every advertisement with priority > 0 queued on `sock`."""
    out: list[tuple[int, str]] = []
    while True:
        try:
            data, addr = sock.recvfrom(8192)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            return out
        if family == 4:
            if len(data) < 24 or data[8] != 255:
                continue
            vrrp, src = data[(data[0] & 0x0F) * 4:], socket.inet_ntoa(data[12:16])
        else:
            vrrp, src = data, addr[0].split("%", 1)[0]
        if len(vrrp) >= 3 and vrrp[0] >> 4 in (2, 3) and vrrp[2] > 0:
            out.append((vrrp[1], src))


def _hand_over(nl: rtnl.Rtnl, state: _State) -> tuple[int, float]:
    """The daemon is gone: hand over every instance it held (module docstring). Returns how many
    instances were master and how long the handover took (ms)."""
    t0 = time.monotonic()
    up = {link.index for _t, body in nl.one(rtnl.link_dump())
          for link in [rtnl.parse_link(body)] if link.flags & rtnl.IFF_UP}
    masters = [s for s in state.specs.values() if s["ifindex"] in up and (
        s["vmac"] or any((s["ifindex"], v) in state.vips for v in s["vips"]))]
    for spec in masters:                              # 1. shared storage first
        for argv in spec.get("stop", []):
            import subprocess
            try:
                subprocess.run(argv, timeout=30, check=False, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as exc:
                _say(f"{spec['instance']}: stopping {argv[-1]!r} failed: {exc}")
    pending: dict[tuple[int, int, int], GuardSpec] = {}
    for spec in masters:                              # 2. priority 0, VIPs kept
        try:
            frame = _priority_zero(spec)
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as tx:
                tx.bind((socket.if_indextoname(spec["ifindex"]), 0))
                tx.send(frame)
        except (OSError, ValueError) as exc:
            _say(f"{spec['instance']}: priority 0 not sent: {exc}")
        pending[(spec["parent"], spec["family"], spec["vrid"])] = spec
    listeners = {fam: _listener(fam, {s["parent"] for s in masters if s["family"] == fam})
                 for fam in (4, 6) if any(s["family"] == fam for s in masters)}
    deadline = {k: time.monotonic() + float(s["bound"]) for k, s in pending.items()}
    while pending:
        for fam, sock in listeners.items():
            for vrid, src in _successors(sock, fam) if sock is not None else []:
                for key in [k for k, s in pending.items()
                            if k[1] == fam and k[2] == vrid and src != s["primary"]]:
                    _release(nl, pending.pop(key), state, f"successor {src} heard")
        now = time.monotonic()
        for key in [k for k in pending if deadline[k] <= now]:
            _release(nl, pending.pop(key), state, "no successor within the handover bound")
        if pending:
            fds = [s for s in listeners.values() if s is not None]
            wait = max(0.0, min(deadline[k] for k in pending) - now)
            select.select(fds, [], [], min(wait, 0.05) if fds else wait)
    for spec in state.specs.values():                 # backups: make sure nothing is up
        if spec not in masters and spec["vmac"] and spec["ifindex"] in up:
            _release(nl, spec, state, "daemon gone")
    for idx, vip in sorted(state.vips):               # vmac = false VIPs nobody handed over
        _del_vip(nl, idx, vip)
    return len(masters), (time.monotonic() - t0) * 1000


def _release(nl: rtnl.Rtnl, spec: GuardSpec, state: _State, why: str) -> None:
    idx = spec["ifindex"]
    if spec["vmac"]:
        nl.call([rtnl.set_link_up(idx, False)])       # 3. stops every frame from the vMAC
    for vip in spec["vips"]:
        _del_vip(nl, idx, vip)
        state.vips.discard((idx, vip))
    _say(f"{spec['instance']}: released ({why})")


def _del_vip(nl: rtnl.Rtnl, idx: int, vip: str) -> None:
    address, _, plen = vip.partition("/")
    prefix = int(plen) if plen else (32 if ":" not in address else 128)
    nl.call([rtnl.address(False, idx, address, prefix)])


def serve(fd: int) -> int:
    """Guardian main loop on the inherited socket `fd`."""
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    nl = rtnl.Rtnl()
    state = _State()
    sock.sendall(READY)
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except InterruptedError:
            continue
        if not data:
            masters, took = _hand_over(nl, state)
            _say(f"daemon gone; handed over {masters} instance(s) in {took:.1f} ms")
            return 0
        buf += data
        while len(buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(buf)
            if len(buf) < _LEN.size + size:
                break
            raw, buf = buf[_LEN.size:_LEN.size + size], buf[_LEN.size + size:]
            try:
                if state.apply(marshal.loads(raw)):
                    return 0
            except (ValueError, EOFError, KeyError, TypeError) as exc:
                _say(f"bad message {raw[:80]!r}: {exc}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``--fd N`` (the daemon's socketpair end)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--fd" or not args[1].isdigit():
        print("usage: python3 -m vmacd.linux.guardian --fd N", file=sys.stderr)
        return 2
    fd = int(args[1])
    try:
        os.fstat(fd)
    except OSError:
        print(f"vmacd-guardian: fd {fd} is not open", file=sys.stderr)
        return 2
    return serve(fd)


if __name__ == "__main__":
    sys.exit(main())
