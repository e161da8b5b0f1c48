"""Logging: JSON and text formats with extra fields; the rate-limited logger."""
from __future__ import annotations

import argparse
import io
import json
import logging

import pytest

from vmacd import log as vlog


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_have_ts_level_msg_and_extras(restore_root):
    buf = io.StringIO()
    vlog.setup("json", "debug", stream=buf)
    logging.getLogger("vmacd.fsm").info("%s -> %s", "backup", "master",
                                        extra={"instance": "lan", "from": "backup", "to": "master",
                                               "reason": "master_down timer expired"})
    rec = json.loads(buf.getvalue().splitlines()[-1])
    assert rec["level"] == "info" and rec["msg"] == "backup -> master" and rec["logger"] == "vmacd.fsm"
    assert rec["instance"] == "lan" and rec["from"] == "backup" and rec["to"] == "master"
    assert rec["reason"] == "master_down timer expired"
    assert rec["ts"].endswith("+00:00") and "T" in rec["ts"]


def test_json_includes_exceptions_and_odd_values(restore_root):
    buf = io.StringIO()
    vlog.setup("json", "info", stream=buf)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logging.getLogger("vmacd").exception("failed", extra={"addr": object()})
    rec = json.loads(buf.getvalue())
    assert "RuntimeError: kaput" in rec["exc"] and rec["level"] == "error" and "object" in rec["addr"]


def test_text_format_appends_extras_and_level_filters(restore_root):
    buf = io.StringIO()
    vlog.setup("text", "warning", stream=buf, timestamps=False)
    lg = logging.getLogger("vmacd.x")
    lg.info("hidden")
    lg.warning("late advert", extra={"instance": "lan", "reason": "two words"})
    assert buf.getvalue() == 'WARNING vmacd.x: late advert instance=lan reason="two words"\n'


def test_setup_replaces_its_own_handler_only(restore_root):
    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    vlog.setup("text", "info", stream=io.StringIO())
    vlog.setup("json", "info", stream=io.StringIO())
    ours = [h for h in root.handlers if getattr(h, "_vmacd", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, vlog.JsonFormatter)
    assert foreign in root.handlers


def test_bad_format_or_level():
    with pytest.raises(ValueError, match="log format"):
        vlog.setup("xml")
    with pytest.raises(ValueError, match="log level must be one of"):
        vlog.parse_level("loud")
    assert vlog.parse_level("DEBUG") == logging.DEBUG


def test_add_arguments():
    p = argparse.ArgumentParser()
    vlog.add_arguments(p)
    a = p.parse_args(["--log-format", "json", "--log-level", "DEBUG"])
    assert (a.log_format, a.log_level) == ("json", "debug")
    with pytest.raises(SystemExit):
        p.parse_args(["--log-format", "yaml"])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def captured():
    logger = logging.getLogger("vmacd.test.ratelimit")
    logger.propagate = False
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(vlog.JsonFormatter())
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    yield logger, buf
    logger.removeHandler(h)


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def test_rate_limited_burst_then_suppression_then_report(captured):
    logger, buf = captured
    clock = Clock()
    rl = vlog.RateLimited(logger, per_seconds=10, burst=3, clock=clock)
    results = [rl.warning("drop %s", "ttl", key="ttl") for _ in range(10)]
    assert results == [True] * 3 + [False] * 7
    assert rl.total_suppressed == 7 and len(lines(buf)) == 3
    clock.t += 10 / 3                                  # one token back
    assert rl.warning("drop %s", "ttl", key="ttl", extra={"instance": "lan"})
    last = lines(buf)[-1]
    assert last["msg"] == "drop ttl (7 similar lines suppressed)"
    assert last["suppressed"] == 7 and last["instance"] == "lan"
    assert not rl.warning("drop %s", "ttl", key="ttl")


def test_rate_limited_keys_are_independent_and_flush_reports(captured):
    logger, buf = captured
    clock = Clock()
    rl = vlog.RateLimited(logger, per_seconds=60, burst=1, clock=clock)
    assert rl.warning("a") and rl.warning("b")
    assert not rl.warning("a") and not rl.warning("a") and not rl.warning("b")
    assert rl.flush() == 3
    tail = lines(buf)[-2:]
    assert {(r["msg"], r["suppressed"]) for r in tail} == {("2 similar lines suppressed: a", 2),
                                                          ("1 similar line suppressed: b", 1)}
    assert rl.flush() == 0


def test_rate_limited_respects_level_and_arguments(captured):
    logger, _buf = captured
    logger.setLevel(logging.ERROR)
    rl = vlog.RateLimited(logger, per_seconds=1, burst=1, clock=Clock())
    assert rl.info("quiet") is False and rl.total_suppressed == 0
    with pytest.raises(ValueError):
        vlog.RateLimited(logger, per_seconds=0, burst=1)
    with pytest.raises(ValueError):
        vlog.RateLimited(logger, per_seconds=1, burst=0)
