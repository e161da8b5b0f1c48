"""`vmacd check`: exit 0 ok, 1 invalid (all errors, one per line), 2 unusable call."""
from __future__ import annotations

import argparse
import pathlib

import pytest

from vmacd.cli import check
from vmacd.linux.preflight import ERROR, WARNING, Finding

APPLIANCE = pathlib.Path(__file__).resolve().parents[2] / "appliance" / "vmacd.toml"
GOOD = '[global]\nnode = "r1"\n[[instance]]\nname = "lan"\ninterface = "eth1"\nvrid = 51\n' \
       'virtual_ips = ["192.0.2.254/24"]\nadvert_interval = "100ms"\n'


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    check.setargs(parser)
    return check.cmdline(parser.parse_args(list(argv)))


@pytest.fixture
def no_system(monkeypatch):
    """Preflight against nothing: the findings each test sets."""
    findings: list[Finding] = []
    monkeypatch.setattr(check, "preflight", lambda config: list(findings))
    return findings


def test_default_config_path():
    parser = argparse.ArgumentParser()
    check.setargs(parser)
    args = parser.parse_args([])
    assert args.config == "/etc/vmacd/vmacd.toml" and args.no_preflight is False


def test_appliance_example_is_valid_without_preflight(capsys):
    assert run("--no-preflight", "-c", str(APPLIANCE)) == 0
    out = capsys.readouterr().out
    assert "ok: node web-a, 2 instances, 1 sync group(s) (preflight skipped)" in out
    assert "  web: eth0 vrid 51 VRRPv3 IPv4 priority 150 advert 200ms vmac bridge auth hmac-sha256" in out


def test_good_config_prints_summary_and_exits_0(tmp_path, capsys, no_system):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD)
    no_system.append(Finding(WARNING, "instance[lan].interface", "eth1 has no carrier"))
    assert run("-c", str(path)) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith(f"{path}: ok: node r1, 1 instance, 1 warning(s)\n")
    assert cap.err == f"{path}: instance[lan].interface: warning: eth1 has no carrier\n"


def test_preflight_error_exits_1(tmp_path, capsys, no_system):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD)
    no_system.append(Finding(ERROR, "instance[lan].interface", "interface eth1 does not exist"))
    assert run("-c", str(path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{path}: instance[lan].interface: error: interface eth1 does not exist",
                   f"{path}: preflight failed: 1 error(s)"]


def test_no_preflight_skips_the_system(tmp_path, capsys, no_system):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD)
    no_system.append(Finding(ERROR, "system", "would fail"))
    assert run("--no-preflight", "-c", str(path)) == 0


def test_invalid_config_prints_every_error_and_exits_1(tmp_path, capsys):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD.replace("vrid = 51", "vrid = 300").replace('"100ms"', '"100 ms"'))
    assert run("--no-preflight", "-c", str(path)) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.splitlines() == [
        f"{path}: instance[lan].vrid: must be 1..255, got 300",
        (f'{path}: instance[lan].advert_interval: must be a number with a unit ms, s, m or h, '
         f'e.g. "100ms" or "1.5s", got "100 ms"'),
        f"{path}: invalid: 2 error(s)",
    ]


def test_toml_syntax_error_exits_1(tmp_path, capsys):
    path = tmp_path / "vmacd.toml"
    path.write_text("[[instance]\n")
    assert run("-c", str(path)) == 1
    assert capsys.readouterr().err.startswith(f"{path}: line 1, column 11: invalid TOML:")


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_unusable_call_exits_2(tmp_path, capsys, make):
    path = tmp_path / "nope.toml" if make == "missing" else tmp_path
    assert run("-c", str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vmacd check: cannot read {path}: ")


def test_dispatch_through_vmacd_main(capsys):
    from vmacd.cli.main import main
    assert main(["check", "--no-preflight", "-c", str(APPLIANCE)]) == 0
    assert "ok: node web-a" in capsys.readouterr().out
    assert main(["check", "-c", "/nonexistent/vmacd.toml"]) == 2


def test_a_key_problem_does_not_hide_the_other_findings(tmp_path, capsys, no_system):
    """The importer's inline key saved under umask 022: the mode is one error among the others."""
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD.replace('[[instance]]', '[auth.hb]\ntype = "hmac-sha256"\n'
                                                 'key = "0123456789abcdef"\n[[instance]]')
                    + 'auth = "hb"\n')
    path.chmod(0o644)
    no_system.append(Finding(ERROR, "resource.httpd.start", "service httpd does not exist on this box"))
    no_system.append(Finding(WARNING, "instance[lan].interface", "eth1 has no carrier"))
    assert run("-c", str(path)) == 1
    assert capsys.readouterr().err.splitlines() == [
        (f"{path}: auth.hb.key: error: inline key in a world-readable file (mode 0644); chmod o-r "
         "the config (chmod 600) or use key_file"),
        f"{path}: resource.httpd.start: error: service httpd does not exist on this box",
        f"{path}: instance[lan].interface: warning: eth1 has no carrier",
        f"{path}: preflight failed: 2 error(s)",
    ]


def test_a_missing_key_file_is_reported_with_the_config_errors(tmp_path, capsys):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD.replace('[[instance]]', '[auth.hb]\ntype = "hmac-sha256"\n'
                                                 'key_file = "hb.key"\n[[instance]]')
                    + 'auth = "hb"\npriority = 0\n')
    assert run("-c", str(path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}: instance[lan].priority: must be 1..255, got 0")
    assert err[1:] == [
        f'{path}: auth.hb.key_file: cannot read "{tmp_path}/hb.key": No such file or directory',
        f"{path}: invalid: 2 error(s)"]


def test_no_preflight_still_gives_the_config_warnings(tmp_path, capsys):
    path = tmp_path / "vmacd.toml"
    path.write_text(GOOD + 'accept = false\nresources = ["r"]\n[resource.r]\nstart = ["/nonexistent"]\n'
                           'stop = ["/nonexistent"]\n')
    assert run("--no-preflight", "-c", str(path)) == 0      # commands are the target box's business
    cap = capsys.readouterr()
    assert cap.err.startswith(f"{path}: instance[lan].accept: warning: false: as master this router drops")
    assert "(preflight skipped)" in cap.out
