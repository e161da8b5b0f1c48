"""The command table: validation and error replies, without a socket."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_control_server import FakeDaemon

from vmacd.control.commands import REGISTRY, Dispatcher, command, validate


def run(request: object, daemon: FakeDaemon | None = None) -> dict:
    replies: list[dict] = []
    Dispatcher(daemon or FakeDaemon()).handle(request, replies.append)
    assert len(replies) == 1
    return replies[0]


def line(raw: bytes) -> dict:
    replies: list[dict] = []
    Dispatcher(FakeDaemon()).handle_line(raw, replies.append)
    assert len(replies) == 1
    return replies[0]


def test_spec_commands_are_registered():
    assert {"status", "history", "maintenance", "reload"} <= set(REGISTRY)
    helped = run({"cmd": "help"})
    assert helped["ok"] and helped["commands"]["maintenance"]["fields"] == {"instance": "str", "on": "bool"}
    assert helped["commands"]["maintenance"]["optional"] == {"force": "bool", "persist": "bool"}


def test_status_and_history_replies():
    s = run({"cmd": "status"})
    assert s["ok"] is True and s["instances"][0]["timers"]["master_down_interval_ms"] == 361
    h = run({"cmd": "history"})
    assert h["ok"] is True and h["history"][0]["reason"] == "master_down timer expired"


@pytest.mark.parametrize("request_, fragment", [
    ({}, 'missing field "cmd"'),
    ({"cmd": None}, 'missing field "cmd"'),
    ({"cmd": ["status"]}, 'field "cmd" must be a string'),
    ({"cmd": "STATUS"}, "unknown command 'STATUS'"),
    ({"cmd": "maintenance", "on": True}, 'maintenance: missing field "instance"'),
    ({"cmd": "maintenance", "instance": "lan"}, 'maintenance: missing field "on"'),
    ({"cmd": "maintenance", "instance": "lan", "on": 1}, 'field "on" must be true or false, got 1'),
    ({"cmd": "maintenance", "instance": "lan", "on": "on"}, 'field "on" must be true or false'),
    ({"cmd": "maintenance", "instance": 3, "on": True}, 'field "instance" must be a string'),
    ({"cmd": "maintenance", "instance": "", "on": True}, 'field "instance" must be a string'),
    ({"cmd": "maintenance", "instance": "lan", "on": True, "force": 1},
     'field "force" must be true or false'),
    ({"cmd": "maintenance", "instance": "lan", "on": True, "forse": True}, "unexpected field(s): 'forse'"),
    ({"cmd": "status", "verbose": True}, "status: unexpected field(s): 'verbose'"),
    ({"cmd": "maintenance", "instance": "ghost", "on": True}, "unknown instance 'ghost'"),
    ([{"cmd": "status"}], "request must be a JSON object, got list"),
    ("status", "request must be a JSON object, got str"),
])
def test_bad_requests_get_clear_errors(request_, fragment):
    reply = run(request_)
    assert reply["ok"] is False
    assert fragment in reply["error"]


def test_unknown_command_lists_the_known_ones():
    err = run({"cmd": "frobnicate"})["error"]
    assert "status" in err and "reload" in err and "maintenance" in err


def test_maintenance_changes_the_daemon():
    d = FakeDaemon()
    assert run({"cmd": "maintenance", "instance": "wan", "on": False}, d)["ok"] is True
    assert d.maint["wan"] is False


def test_line_decoding_errors():
    assert "UTF-8" in line(b"\xc3\x28")["error"]
    assert "not valid JSON" in line(b"{'cmd': 'status'}")["error"]
    assert line(b"   ")["error"] == "empty request"
    deep = line(b"[" * 200000 + b"]" * 200000)         # RecursionError in the json module
    assert deep["ok"] is False
    assert line(b'{"cmd":"status"}')["ok"] is True


def test_reload_refused_and_handler_type_errors():
    d = FakeDaemon()
    d.refuse = "bad config"
    assert run({"cmd": "reload"}, d) == {"ok": False, "error": "reload refused: bad config"}

    class Broken(FakeDaemon):
        def status(self):  # a daemon bug: not a dict
            return ["x"]

    r = run({"cmd": "status"}, Broken())
    assert r["ok"] is False and "internal error" in r["error"]


def test_result_cannot_override_ok():
    class Liar(FakeDaemon):
        def status(self):
            return {"ok": False, "node": "x"}

    assert run({"cmd": "status"}, Liar())["ok"] is True


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        command("status", "again")(lambda api, args: None)


def test_validate_returns_the_command_and_args():
    cmd, args = validate({"cmd": "maintenance", "instance": "lan", "on": False})
    assert cmd.name == "maintenance"
    assert args == {"instance": "lan", "on": False, "force": False, "persist": False}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    json_values,
    st.fixed_dictionaries({"cmd": st.sampled_from(sorted(REGISTRY))}, optional={
        "instance": json_values, "on": json_values, "extra": json_values}),
))
def test_any_json_gets_a_well_formed_reply(value):
    reply = run(value)
    assert isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
    json.dumps(reply)                                   # always encodable


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_get_a_reply(raw):
    reply = line(raw)
    assert isinstance(reply["ok"], bool)
