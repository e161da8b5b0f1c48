"""vmacctl against a real control server (fake daemon behind it)."""
from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import pytest
from test_control_server import FakeDaemon, running_server

from vmacd.cli import ctl

VMACCTL = pathlib.Path(sys.executable).with_name("vmacctl")


@pytest.fixture
def sock():
    d = tempfile.mkdtemp(prefix="vmacd-ctl-", dir="/tmp")
    yield os.path.join(d, "vmacd.sock")
    shutil.rmtree(d, ignore_errors=True)


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = ctl.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_status_table_and_json(sock):
    with running_server(sock):
        rc, out, err = call("-s", sock, "status")
        assert rc == 0 and err == ""
        lines = out.splitlines()
        assert lines[0] == "node r1  vmacd 0.1.0"
        assert lines[1].split()[:7] == ["INSTANCE", "VRID", "IF", "V", "STATE", "PRIO", "EFF"]
        lan = lines[2].split()
        assert lan[:8] == ["lan", "51", "eth1", "3/ip4", "master", "150", "100", "192.0.2.1/150"]
        assert "100ms" in lan and "361ms" in lan and "192.0.2.254/24" in lan and "eth0:down" in lan
        assert "backup (maint)" in lines[3] and "3.609s" in lines[3] and "2001:db8::1/64" in lines[3]
        rc, out, _ = call("-s", sock, "status", "--json")
        assert rc == 0 and json.loads(out)["instances"][1]["name"] == "wan"


def test_history(sock):
    with running_server(sock):
        rc, out, _ = call("-s", sock, "history")
        rows = out.splitlines()
        assert rc == 0 and rows[0].split() == ["TIME", "INSTANCE", "FROM", "TO", "REASON"]
        assert rows[1].split()[2:] == ["lan", "backup", "master", "master_down", "timer", "expired"]
        assert rows[1].split()[1].endswith(".250")
        rc, out, _ = call("-s", sock, "history", "--json")
        assert [h["instance"] for h in json.loads(out)["history"]] == ["lan", "wan"]


def test_maintenance_on_off_and_unknown_instance(sock):
    daemon = FakeDaemon()
    with running_server(sock, daemon):
        rc, out, _ = call("-s", sock, "maintenance", "lan", "on")
        assert rc == 0 and out == "lan: maintenance on (state backup)\n" and daemon.maint["lan"] is True
        rc, out, _ = call("-s", sock, "maintenance", "lan", "off")
        assert rc == 0 and daemon.maint["lan"] is False
        rc, out, err = call("-s", sock, "maintenance", "ghost", "on")
        assert rc == 1 and out == "" and err == "vmacctl: maintenance: unknown instance 'ghost'\n"


def test_reload_accepted_and_refused(sock):
    daemon = FakeDaemon()
    with running_server(sock, daemon):
        rc, out, _ = call("-s", sock, "reload")
        assert rc == 0 and "added     dmz" in out and "unchanged lan" in out and daemon.reloads == 1
        daemon.refuse = "vmacd.toml: instance[lan].vrid: must be 1..255, got 300"
        rc, out, err = call("-s", sock, "reload")
        assert rc == 1
        assert err == ("vmacctl: reload: reload refused: vmacd.toml: instance[lan].vrid: "
                       "must be 1..255, got 300\n")


def test_daemon_not_reachable_names_the_socket(sock):
    rc, out, err = call("-s", sock, "status")
    assert rc == 2 and out == ""
    assert f"cannot reach vmacd at {sock}" in err and "No such file" in err


def serve_raw(path: str, answer: bytes) -> threading.Thread:
    """A one-shot server that reads a line and answers `answer` (a broken daemon)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        if answer:
            conn.sendall(answer)
        conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("answer, fragment", [
    (b"not json\n", "not JSON"),
    (b"[1]\n", "unexpected reply"),
    (b"", "closed the connection without answering"),
])
def test_broken_replies_exit_2(sock, answer, fragment):
    t = serve_raw(sock, answer)
    rc, _, err = call("-s", sock, "status")
    t.join(5)
    assert rc == 2 and fragment in err and sock in err


def test_silent_daemon_times_out(sock):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock)
    srv.listen(1)
    try:
        rc, _, err = call("-s", sock, "-t", "0.2", "status")
        assert rc == 2 and "did not answer within 0.2s" in err
    finally:
        srv.close()


@pytest.mark.parametrize("argv", [[], ["frob"], ["maintenance", "lan"], ["maintenance", "lan", "maybe"],
                                  ["status", "--yaml"]])
def test_unusable_calls_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        ctl.main(argv)
    assert exc.value.code == 2


def test_console_script(sock):
    if not VMACCTL.exists():
        pytest.skip("vmacctl console script not installed in this environment")
    with running_server(sock):
        p = subprocess.run([str(VMACCTL), "-s", sock, "status", "--json"], capture_output=True,
                           text=True, timeout=20, check=False)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["node"] == "r1"
    p = subprocess.run([str(VMACCTL), "-s", sock, "status"], capture_output=True, text=True, timeout=20,
                       check=False)
    assert p.returncode == 2 and sock in p.stderr
