"""The `kind = "filesystem"` resource: mount shared storage on becoming master, unmount it on
leaving (after a bounded kill of the processes still using it), check that it stays mounted.

Mounting and unmounting can hang (an NFS server gone, a busy device), so the daemon never does
them itself: it runs this module as a command with a timeout, like any resource command:

    python3 -m vmacd.linux.mounts mount DEVICE MOUNTPOINT FSTYPE OPTIONS
    python3 -m vmacd.linux.mounts umount MOUNTPOINT --budget SECONDS

Both are idempotent (mounting what is mounted there already, or unmounting what is not mounted,
succeeds) and exit non-zero with one line on stderr saying why. `mounted()` is the monitor: a
read of /proc/self/mountinfo, cheap enough to run on the daemon's loop.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(path: str = "/proc/self/mountinfo") -> list[tuple[str, str, str]]:
    """(mountpoint, fstype, source) of every mount, from mountinfo."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 2:
                out.append((_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return out


def mounted(mountpoint: str, fstype: str = "auto") -> str | None:
    """None when `mountpoint` is mounted (with `fstype` unless auto), else why not."""
    mp = os.path.normpath(mountpoint)
    found = [m for m in mounts() if m[0] == mp]
    if not found:
        return f"{mp} is not mounted"
    if fstype not in ("auto", "") and found[-1][1] != fstype and not (
            fstype.startswith("nfs") and found[-1][1].startswith("nfs")):
        return f"{mp} holds a {found[-1][1]} filesystem, not {fstype}"
    return None


def do_mount(device: str, mountpoint: str, fstype: str, options: str) -> int:
    mp = os.path.normpath(mountpoint)
    if mounted(mp, fstype) is None:
        return 0
    os.makedirs(mp, exist_ok=True)
    argv = ["mount"]
    if fstype not in ("auto", ""):
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    res = subprocess.run([*argv, device, mp], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        print(f"mount {device} on {mp}: {res.stderr.strip() or f'exit {res.returncode}'}",
              file=sys.stderr)
        return 1
    return 0


def users(mountpoint: str) -> list[int]:
    """Processes that keep `mountpoint` busy: working directory, root, executable, an open file
    or a mapped file under it."""
    mp = os.path.normpath(mountpoint)
    me = os.getpid()

    def under(path: str) -> bool:
        return path == mp or path.startswith(mp + "/")

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        try:
            paths = [os.readlink(f"{base}/{name}") for name in ("cwd", "root", "exe")
                     if os.path.lexists(f"{base}/{name}")]
            fds = f"{base}/fd"
            paths += [os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)]
            with open(f"{base}/maps", encoding="utf-8", errors="replace") as fh:
                paths += [line.split(None, 5)[5].strip() for line in fh if line.count(" ") >= 5]
        except OSError:
            continue
        if any(under(p) for p in paths if p.startswith("/")):
            found.append(int(entry))
    return found


def do_umount(mountpoint: str, budget: float) -> int:
    """Unmount; when busy, SIGTERM the users, then SIGKILL them, within `budget` seconds."""
    mp = os.path.normpath(mountpoint)
    deadline = time.monotonic() + budget
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if mounted(mp) is not None:
            return 0
        if sig is not None:
            for pid in users(mp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            wait_until = min(deadline, time.monotonic() + budget / 3)
            while time.monotonic() < wait_until and users(mp):
                time.sleep(0.05)
        res = subprocess.run(["umount", mp], capture_output=True, text=True, check=False)
        if res.returncode == 0:
            return 0
        last = res.stderr.strip() or f"exit {res.returncode}"
        if time.monotonic() >= deadline:
            break
    print(f"umount {mp}: {last}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    import argparse  # the command line of the mount helper, not the daemon's

    parser = argparse.ArgumentParser(prog="python3 -m vmacd.linux.mounts")
    sub = parser.add_subparsers(dest="op", required=True)
    m = sub.add_parser("mount")
    m.add_argument("device")
    m.add_argument("mountpoint")
    m.add_argument("fstype")
    m.add_argument("options", nargs="?", default="")
    u = sub.add_parser("umount")
    u.add_argument("mountpoint")
    u.add_argument("--budget", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.op == "mount":
        return do_mount(args.device, args.mountpoint, args.fstype, args.options)
    return do_umount(args.mountpoint, args.budget)


if __name__ == "__main__":
    sys.exit(main())
