"""vmacd.linux.procs: track scripts (rise/fall/timeout, group kill), serial notify/resource queues.
No namespace needed, but it lives with the other vmacd.linux tests."""
from __future__ import annotations

import asyncio
import time

import pytest

from vmacd.linux.procs import (
    Result,
    ScriptRunner,
    SerialRunner,
    notify_argv,
    run_command,
)


def test_run_command_results(tmp_path):
    async def main():
        ok = await run_command(["true"], 2)
        bad = await run_command(["sh", "-c", "exit 3"], 2)
        missing = await run_command([str(tmp_path / "nope")], 2)
        return ok, bad, missing
    ok, bad, missing = asyncio.run(main())
    assert ok.ok and ok.returncode == 0
    assert not bad.ok and bad.returncode == 3
    assert not missing.ok and missing.returncode is None and "cannot run" in missing.error


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    script = f"sleep 30 & echo $! > {pidfile}; wait"

    async def main():
        t0 = time.monotonic()
        res = await run_command(["sh", "-c", script], 0.3)
        return res, time.monotonic() - t0
    res, took = asyncio.run(main())
    assert res.timed_out and not res.ok and "timeout after 0.3s" in res.error
    assert took < 1.0
    pid = int(pidfile.read_text())

    def gone() -> bool:                           # dead, or a zombie waiting for init to reap it
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    deadline = time.monotonic() + 1
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone()                                 # the script's own child died with the group


def test_script_runner_rise_fall_and_timeout(tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    argv = ["sh", "-c", f'test -e {flag} || exit 1; test -e {flag}.hang && sleep 5; exit 0']
    changes: list[tuple[str, bool, float]] = []

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        runner = ScriptRunner("svc", argv, interval=0.05, timeout=0.2, rise=3, fall=2,
                              on_change=lambda n, up: changes.append((n, up, loop.time() - t0)))
        runner.start()
        while not changes:
            await asyncio.sleep(0.01)
        flag.unlink()                             # fails from now on
        while len(changes) < 2:
            await asyncio.sleep(0.01)
        flag.write_text("")
        while len(changes) < 3:
            await asyncio.sleep(0.01)
        (tmp_path / "ok.hang").write_text("")     # hangs: timeouts count as failures
        while len(changes) < 4:
            await asyncio.sleep(0.01)
        last = runner.last
        await runner.stop()
        return last
    last = asyncio.run(asyncio.wait_for(main(), 10))
    assert [(n, up) for n, up, _ in changes] == [("svc", True), ("svc", False), ("svc", True), ("svc", False)]
    assert changes[0][2] >= 0.1                   # rise=3: third success at >= 2 intervals
    assert last.timed_out


def test_script_runner_never_blocks_the_loop():
    ticks = []

    async def main():
        runner = ScriptRunner("slow", ["sleep", "0.5"], interval=1, timeout=2, rise=1, fall=1,
                              on_change=lambda *a: None)
        runner.start()
        for _ in range(20):
            t = time.monotonic()
            await asyncio.sleep(0.01)
            ticks.append(time.monotonic() - t)
        await runner.stop()
    asyncio.run(main())
    assert max(ticks) < 0.1


def test_serial_runner_order_per_key_and_parallel_keys(tmp_path):
    log = tmp_path / "log"
    done: list[tuple[str, Result]] = []

    def cmd(tag, delay):
        return ["sh", "-c", f"echo start {tag} >> {log}; sleep {delay}; echo end {tag} >> {log}"]

    async def main():
        runner = SerialRunner()
        runner.submit("lan", cmd("a1", 0.2), 2, lambda r: done.append(("a1", r)))
        runner.submit("lan", cmd("a2", 0), 2, lambda r: done.append(("a2", r)))
        runner.submit("lan", ["sh", "-c", "sleep 5"], 0.2, lambda r: done.append(("a3", r)))
        runner.submit("lan", cmd("a4", 0), 2, lambda r: 1 / 0)          # a buggy callback
        runner.submit("lan", cmd("a5", 0), 2, lambda r: done.append(("a5", r)))
        runner.submit("wan", cmd("b1", 0), 2, lambda r: done.append(("b1", r)))
        assert runner.pending("lan") == 5
        await runner.drain(10)
        await runner.close()
        return runner.results
    results = asyncio.run(main())
    lines = log.read_text().split()
    order = [lines[i + 1] for i in range(0, len(lines), 2) if lines[i] == "start"]
    lan = [t for t in order if t.startswith("a")]
    assert lan == ["a1", "a2", "a4", "a5"]
    assert lines.index("b1") < lines.index("a2")  # the other key did not wait for a1
    a1_end = next(i for i in range(0, len(lines), 2) if lines[i:i + 2] == ["end", "a1"])
    a2_start = next(i for i in range(0, len(lines), 2) if lines[i:i + 2] == ["start", "a2"])
    assert a1_end < a2_start                      # one at a time
    assert [t for t, _ in done] == ["b1", "a1", "a2", "a3", "a5"]
    assert dict(done)["a3"].timed_out and dict(done)["a1"].ok
    assert len(results) == 6


def test_notify_argv():
    assert notify_argv("/etc/vmacd/notify.sh", "INSTANCE", "lan", "MASTER", 150) == [
        "/etc/vmacd/notify.sh", "INSTANCE", "lan", "MASTER", "150"]
    assert notify_argv(["sh", "n.sh"], "GROUP", "router", "STOP", 0)[-4:] == ["GROUP", "router", "STOP", "0"]
    with pytest.raises(ValueError, match="TYPE/STATE"):
        notify_argv("x", "INSTANCE", "lan", "ACTIVE", 1)
