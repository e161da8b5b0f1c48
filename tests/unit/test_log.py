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

