"""`vmacctl`: talk to a running vmacd over its control socket (docs/operations.md).

    vmacctl [-s SOCKET] status [--json] | history [--json] | reload [--json]
            | maintenance INSTANCE on|off [--force] [--persist] | clear INSTANCE

Exit codes: 0 ok; 1 the daemon answered ok=false; 2 unusable call, or the daemon cannot be
reached (the message names the socket path).
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any, NoReturn, TextIO

DEFAULT_SOCKET = "/run/vmacd/vmacd.sock"
MAX_REPLY = 16 * 1024 * 1024

#: A request, or a reply as json.loads gives it (values Any): each printer checks what it uses.
JsonObject = dict[str, Any]


class Unreachable(Exception):
    """The daemon could not be asked or did not answer properly (exit 2)."""


def request(path: str, req: JsonObject, timeout: float = 10.0) -> JsonObject:
    """Send one request line, read one reply line. Raises Unreachable with a clear message."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise Unreachable(f"cannot reach vmacd at {path}: {exc.strerror or exc}"
                              " (is vmacd running? use -s SOCKET for another path)") from exc
        try:
            sock.sendall(json.dumps(req).encode() + b"\n")
            buf = bytearray()
            while b"\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_REPLY:
                    raise Unreachable(f"reply from {path} is too large")
        except TimeoutError:
            raise Unreachable(f"vmacd at {path} did not answer within {timeout:g}s") from None
        except OSError as exc:
            raise Unreachable(f"connection to vmacd at {path} failed: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    line = bytes(buf).split(b"\n", 1)[0]
    if not line:
        raise Unreachable(f"vmacd at {path} closed the connection without answering")
    try:
        reply = json.loads(line)
    except ValueError:
        raise Unreachable(f"vmacd at {path} sent a reply that is not JSON: {line[:80]!r}") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise Unreachable(f"vmacd at {path} sent an unexpected reply: {line[:80]!r}")
    return reply


# ---------------------------------------------------------------- human output


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value / 1000:g}s" if value >= 1000 else f"{value:g}ms"


def _ago(ts: Any, now: float) -> str:
    """Age of a unix timestamp as `45s`, `3m12s`, `2h5m`, `4d3h`."""
    if not isinstance(ts, (int, float)):
        return "-"
    secs = max(0, int(now - ts))
    for big, big_s, small, small_s in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if secs >= big_s:
            rest = (secs % big_s) // small_s
            return f"{secs // big_s}{big}{f'{rest}{small}' if rest else ''}"
    return f"{secs}s"


def table(rows: list[list[str]], out: TextIO) -> None:
    """Left-aligned columns, two spaces apart."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out.writelines("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in rows)


def print_status(reply: JsonObject, out: TextIO, now: float | None = None) -> None:
    now = time.time() if now is None else now
    sch = reply.get("scheduling") if isinstance(reply.get("scheduling"), dict) else {}
    rt = f"  scheduling {sch.get('policy')} {sch.get('priority')}" if sch else ""
    out.write(f"node {reply.get('node', '?')}  vmacd {reply.get('version', '?')}{rt}\n")
    rows = [["INSTANCE", "VRID", "IF", "V", "STATE", "PRIO", "EFF", "MASTER", "ADVERT", "DOWN",
             "SINCE", "VIPS", "TRACK"]]
    for inst in reply.get("instances") or []:
        if not isinstance(inst, dict):
            continue
        master = inst.get("master")
        seen = f"{master.get('src')}/{master.get('priority')}" if isinstance(master, dict) else "-"
        timers, trackers = inst.get("timers"), inst.get("trackers")
        timers = timers if isinstance(timers, dict) else {}
        trackers = trackers if isinstance(trackers, dict) else {}
        state = str(inst.get("state", "?")) + (" (maint)" if inst.get("maintenance") else "")
        if inst.get("waiting"):
            state += f" (waiting: {inst['waiting']})"
        elif inst.get("failed"):
            state += f" (failed: {', '.join(inst['failed'])})"
        rows.append([
            str(inst.get("name", "?")), str(inst.get("vrid", "?")), str(inst.get("interface", "?")),
            f"{inst.get('version', '?')}/ip{inst.get('family', '?')}", state,
            str(inst.get("priority", "?")), str(inst.get("effective_priority", "?")), seen,
            _ms(timers.get("adver_interval_ms")), _ms(timers.get("master_down_interval_ms")),
            _ago(inst.get("since"), now), ",".join(map(str, inst.get("vips") or [])) or "-",
            ",".join(f"{k}:{'up' if v else 'down'}" for k, v in trackers.items()) or "-",
        ])
    table(rows, out)
    for inst in reply.get("instances") or []:
        if not isinstance(inst, dict):
            continue
        for peer in inst.get("peers") or []:
            if not isinstance(peer, dict):
                continue
            for note in peer.get("warnings") or []:
                out.write(f"{inst.get('name', '?')}: peer {peer.get('src', '?')}: {note}\n")


def print_history(reply: JsonObject, out: TextIO) -> None:
    rows = [["TIME", "INSTANCE", "FROM", "TO", "REASON"]]
    for ev in reply.get("history") or []:
        if not isinstance(ev, dict):
            continue
        ts = ev.get("time")
        when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
                if isinstance(ts, (int, float)) else "-")
        rows.append([when, str(ev.get("instance", "?")), str(ev.get("from", "?")),
                     str(ev.get("to", "?")), str(ev.get("reason", ""))])
    table(rows, out)


def print_reload(reply: JsonObject, out: TextIO) -> None:
    out.write("reload: config accepted\n")
    for key in ("added", "removed", "updated", "restarted", "unchanged"):
        names = reply.get(key) or []
        out.write(f"  {key:<9} {', '.join(map(str, names)) if names else '-'}\n")
    for name, why in (reply.get("waiting") or {}).items():
        out.write(f"  waiting   {name}: {why}\n")


def print_maintenance(reply: JsonObject, out: TextIO) -> None:
    on = reply.get("maintenance")
    out.write(f"{reply.get('instance', '?')}: maintenance {'on' if on else 'off'}")
    if reply.get("persistent"):
        out.write(", persistent")
    if "state" in reply:
        out.write(f" (state {reply['state']})")
    if reply.get("detail"):
        out.write(f": {reply['detail']}")
    out.write("\n")


def print_clear(reply: JsonObject, out: TextIO) -> None:
    cleared = reply.get("cleared") or []
    out.write(f"{reply.get('instance', '?')}: "
              + (f"forgot the failures of {', '.join(cleared)}" if cleared else "no failures")
              + f" (state {reply.get('state', '?')})\n")


# ---------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vmacctl", description="control a running vmacd")
    p.add_argument("-s", "--socket", default=DEFAULT_SOCKET,
                   help=f"control socket (default {DEFAULT_SOCKET})")
    p.add_argument("-t", "--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    s = sub.add_parser("status", help="state, priorities, master seen, timers per instance")
    s.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    h = sub.add_parser("history", help="transitions with time, from, to, reason")
    h.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    m = sub.add_parser("maintenance", help="drain an instance (priority 0, stay backup) or end it")
    m.add_argument("instance")
    m.add_argument("mode", choices=("on", "off"))
    m.add_argument("--force", action="store_true",
                   help="drain even when no other router would take over (the VIP goes masterless)")
    m.add_argument("--persist", action="store_true",
                   help="keep the drain across restarts and reboots (state under /var/lib/vmacd)")
    m.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    c = sub.add_parser("clear", help="forget an instance's resource failures (it may be master again)")
    c.add_argument("instance")
    c.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    r = sub.add_parser("reload", help="re-read the config (as SIGHUP) and show the result")
    r.add_argument("--json", action="store_true", help="print the daemon's JSON reply")
    return p


def to_request(args: argparse.Namespace) -> JsonObject:
    if args.cmd == "maintenance":
        req: JsonObject = {"cmd": "maintenance", "instance": args.instance, "on": args.mode == "on"}
        if args.force:
            req["force"] = True
        if args.persist:
            req["persist"] = True
        return req
    if args.cmd == "clear":
        return {"cmd": "clear", "instance": args.instance}
    return {"cmd": args.cmd}


PRINTERS = {"status": print_status, "history": print_history, "reload": print_reload,
            "maintenance": print_maintenance, "clear": print_clear}


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        reply = request(args.socket, to_request(args), args.timeout)
    except Unreachable as exc:
        err.write(f"vmacctl: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    if not reply.get("ok"):
        err.write(f"vmacctl: {args.cmd}: {reply.get('error', 'failed without a message')}\n")
        if args.json:
            out.write(json.dumps(reply, indent=2) + "\n")
        return 1
    try:
        if args.json:
            out.write(json.dumps(reply, indent=2, sort_keys=True) + "\n")
        else:
            PRINTERS[args.cmd](reply, out)
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
