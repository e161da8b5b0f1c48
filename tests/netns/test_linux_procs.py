"""vmacd.linux.procs and vmacd.tracking: commands on the loop (results, stderr, timeouts that kill
the whole group, per-key order) and track scripts (rise/fall/timeout). No namespace needed, but
it lives with the other vmacd.linux tests."""
from __future__ import annotations

import time

import pytest

from vmacd.config import model
from vmacd.linux.procs import Processes, Result
from vmacd.loop import Loop
from vmacd.tracking import ScriptRunner


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


def run_until(loop: Loop, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        loop.run_once(max_wait=0.02)


def one(loop: Loop, argv, timeout: float = 2.0) -> Result:
    out: list[Result] = []
    Processes(loop).run(argv, timeout, out.append)
    run_until(loop, lambda: out)
    return out[0]


def test_results_with_the_first_lines_of_stderr(loop, tmp_path):
    ok = one(loop, ["true"])
    bad = one(loop, ["sh", "-c", "echo 'httpd: no such service' >&2; exit 3"])
    missing = one(loop, [str(tmp_path / "nope")])
    assert ok.ok and ok.returncode == 0
    assert not bad.ok and bad.returncode == 3
    assert bad.describe() == "exit status 3: httpd: no such service"
    assert not missing.ok and missing.returncode is None and "cannot run" in missing.error


def test_timeout_kills_the_whole_group(loop, tmp_path):
    pidfile = tmp_path / "grandchild"
    t0 = time.monotonic()
    res = one(loop, ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.3)
    assert res.timed_out and not res.ok and "timeout after 0.3s" in res.error
    assert time.monotonic() - t0 < 1.0
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


def test_a_daemonised_child_holding_stderr_does_not_hold_the_result(loop):
    t0 = time.monotonic()
    res = one(loop, ["sh", "-c", "(sleep 3 &) ; echo started >&2; exit 0"])
    assert res.ok and time.monotonic() - t0 < 1.5 and "started" in res.stderr


def test_script_runner_rise_fall_and_timeout(loop, tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    argv = ("sh", "-c", f'test -e {flag} || exit 1; test -e {flag}.hang && sleep 5; exit 0')
    changes: list[tuple[str, bool, float]] = []
    t0 = loop.time()
    script = model.TrackScript("svc", argv, interval=0.05, timeout=0.2, rise=3, fall=2)
    runner = ScriptRunner(loop, Processes(loop), script,
                          lambda n, up: changes.append((n, up, loop.time() - t0)))
    runner.start()
    run_until(loop, lambda: changes)
    flag.unlink()                                 # fails from now on
    run_until(loop, lambda: len(changes) >= 2)
    flag.write_text("")
    run_until(loop, lambda: len(changes) >= 3)
    (tmp_path / "ok.hang").write_text("")         # hangs: timeouts count as failures
    run_until(loop, lambda: len(changes) >= 4)
    last = runner.last
    runner.stop()
    assert [(n, up) for n, up, _ in changes] == [("svc", True), ("svc", False), ("svc", True),
                                                 ("svc", False)]
    assert changes[0][2] >= 0.1                   # rise=3: third success at >= 2 intervals
    assert last is not None and last.timed_out


def test_commands_never_block_the_loop(loop):
    ticks: list[float] = []
    Processes(loop).run(["sleep", "0.5"], 2)
    for _ in range(20):
        t = time.monotonic()
        loop.call_later(0.01, lambda: None)
        loop.run_once(max_wait=0.02)
        ticks.append(time.monotonic() - t)
    assert max(ticks) < 0.1


def test_keyed_commands_run_one_at_a_time_in_order(loop, tmp_path):
    log = tmp_path / "log"
    done: list[tuple[str, Result]] = []
    procs = Processes(loop)

    def cmd(tag, delay):
        return ["sh", "-c", f"echo start {tag} >> {log}; sleep {delay}; echo end {tag} >> {log}"]

    procs.run(cmd("a1", 0.2), 2, lambda r: done.append(("a1", r)), key="lan")
    procs.run(cmd("a2", 0), 2, lambda r: done.append(("a2", r)), key="lan")
    procs.run(["sh", "-c", "sleep 5"], 0.2, lambda r: done.append(("a3", r)), key="lan")
    procs.run(cmd("a4", 0), 2, lambda r: 1 / 0, key="lan")               # a buggy callback
    procs.run(cmd("a5", 0), 2, lambda r: done.append(("a5", r)), key="lan")
    procs.run(cmd("b1", 0), 2, lambda r: done.append(("b1", r)), key="wan")
    assert procs.pending("lan") == 5
    run_until(loop, lambda: procs.pending() == 0)
    lines = log.read_text().split()
    order = [lines[i + 1] for i in range(0, len(lines), 2) if lines[i] == "start"]
    assert [t for t in order if t.startswith("a")] == ["a1", "a2", "a4", "a5"]
    assert lines.index("b1") < lines.index("a2")  # the other key did not wait for a1
    a1_end = next(i for i in range(0, len(lines), 2) if lines[i:i + 2] == ["end", "a1"])
    a2_start = next(i for i in range(0, len(lines), 2) if lines[i:i + 2] == ["start", "a2"])
    assert a1_end < a2_start                      # one at a time
    assert [t for t, _ in done] == ["b1", "a1", "a2", "a3", "a5"]
    assert dict(done)["a3"].timed_out and dict(done)["a1"].ok
