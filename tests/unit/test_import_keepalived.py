"""`vmacd import keepalived`: the vrrp_* subset becomes a loadable config; the rest is listed.
Notify scripts keep their keys, shell lines run through /bin/sh -c, strict mode turns accept off."""
from __future__ import annotations

import argparse
import ipaddress
import pathlib

from vmacd.cli import importers
from vmacd.config.emit import dumps
from vmacd.config.import_keepalived import import_keepalived, parse
from vmacd.config.load import load_text

CONF = pathlib.Path(__file__).parent / "data" / "keepalived" / "keepalived.conf"
WEB = CONF.with_name("web-pair.conf")


def translate(text: str):
    result = import_keepalived(text)
    return load_text(dumps(result.doc), "imported.toml"), result.notes


def test_parser_builds_blocks_and_strips_comments():
    [g, s] = parse('global_defs { router_id r1 }  # c\nvrrp_script x {\n script "/bin/a -b # no"\n}\n')
    assert (g.word, g.block[0].word, g.block[0].args) == ("global_defs", "router_id", ["r1"])
    assert s.block[0].args == ["/bin/a -b # no"]


def test_example_translates():
    cfg, _notes = translate(CONF.read_text())
    vi1, vi6 = cfg.instances
    assert cfg.global_.node == "LVS_DEVEL"
    assert (vi1.interface, vi1.vrid, vi1.priority, vi1.version, vi1.advert_interval_cs) == \
        ("eth0", 51, 150, 2, 100)
    assert vi1.vmac is True and vi1.preempt is False
    assert [str(v) for v in vi1.virtual_ips] == ["192.168.200.16/24", "192.168.200.17/32",
                                                 "192.168.200.18/32"]
    assert vi1.auth.type == "pass" and vi1.auth.key == b"1111"
    assert vi1.track_interfaces[0].weight == -30
    assert (vi1.track_scripts[0].name, vi1.track_scripts[0].weight) == ("chk_httpd", -20)
    assert vi1.track_scripts[0].script.command == ("/usr/bin/curl", "-fsS", "http://127.0.0.1/")
    assert vi1.track_files[0].path == "/run/keepalived/load" and vi1.track_files[0].weight == 2
    assert vi1.notify == "/etc/keepalived/notify.sh"
    assert vi1.notify_master == ("/etc/keepalived/master.sh", "arg")
    assert vi1.accept is True and vi6.accept is True       # keepalived's default: accept
    assert vi6.version == 3 and vi6.advert_interval_cs == 50 and vi6.vmac is False
    # keepalived's global-only IPv6 list, kept: keepalived peers drop any other list
    assert vi6.virtual_ips == (ipaddress.ip_interface("2001:db8::10/64"),)
    assert vi6.ipv6_link_local_first is False
    assert vi1.sync_group.instances == ("VI_1", "VI_6")


def test_ipv6_list_keeps_keepalived_set_with_link_local_first():
    text = ("vrrp_instance v6 {\n interface eth0\n virtual_router_id 52\n virtual_ipaddress {\n"
            "  2001:db8::10/64\n  fe80::1:34/64\n }\n}\n")
    cfg, notes = translate(text)
    [v6] = cfg.instances
    assert [str(v) for v in v6.virtual_ips] == ["fe80::1:34/64", "2001:db8::10/64"]
    assert v6.ipv6_link_local_first is True
    assert any("fe80::1:34/64 moved first" in n for n in notes)
    _, notes = translate(CONF.read_text())
    assert any("kept as keepalived lists it, with ipv6_link_local_first = false" in n for n in notes)


def test_nothing_is_dropped_silently():
    _, notes = translate(CONF.read_text())
    for fragment in ("line 4: notification_email", "line 23: state MASTER",
                     "vrrp_sync_group VG_1: notify_master not translated: instance VI_1 has its own",
                     "line 53: smtp_alert", "line 78: virtual_server 10.10.10.2 1358",
                     "vrrp_instance BROKEN (line 65): no vrid, virtual_ipaddress",
                     "members BROKEN were not translated", "line 37: 192.168.200.18 label eth0:1"):
        assert any(fragment in n for n in notes), fragment


def test_v3_auth_and_long_pass():
    text = ("vrrp_instance a {\n interface eth0\n virtual_router_id 1\n version 3\n"
            " authentication {\n auth_type AH\n auth_pass abc\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
            "vrrp_instance b {\n interface eth0\n virtual_router_id 2\n"
            " authentication {\n auth_type PASS\n auth_pass 0123456789\n }\n"
            " virtual_ipaddress {\n 10.0.0.2\n }\n}\n")
    cfg, notes = translate(text)
    a, b = cfg.instances
    assert a.auth is None and any("authentication not translated" in n for n in notes)
    assert b.auth.key == b"01234567" and any("cut to 8 bytes" in n for n in notes)


def test_mixed_family_instance_keeps_the_first_family():
    cfg, notes = translate("vrrp_instance m {\n interface eth0\n virtual_router_id 9\n"
                           " virtual_ipaddress {\n 10.0.0.1/24\n 2001:db8::1\n }\n}\n")
    assert [str(v) for v in cfg.instances[0].virtual_ips] == ["10.0.0.1/24"]
    assert any("2001:db8::1/128 not translated: one address family" in n for n in notes)


def test_cli(capsys):
    parser = argparse.ArgumentParser()
    importers.setargs(parser)
    assert importers.cmdline(parser.parse_args(["keepalived", str(CONF)])) == 0
    cap = capsys.readouterr()
    load_text(cap.out, "stdout.toml")
    assert "note: line 78: virtual_server" in cap.err
    assert "note: the key is inline: save the config with mode 0600" in cap.err


def test_notify_scripts_keep_their_keys_and_groups_give_theirs_to_the_first_member():
    cfg, notes = translate(WEB.read_text())
    v4, v6, _admin = cfg.instances
    assert v4.notify_master == ("/usr/local/sbin/web-state", "master")
    assert v4.notify_backup == ("/usr/local/sbin/web-state", "backup")
    assert v4.notify_fault == ("/bin/sh", "-c", "logger -t keepalived WEB_V4 fault")
    assert v4.notify_stop == ("/bin/sh", "-c", "/usr/local/sbin/web-state stop >/dev/null 2>&1")
    assert v4.notify == "/usr/local/sbin/keepalived-notify"
    assert v6.notify_master == ("/usr/local/sbin/web-group", "master")     # from the group
    assert v6.notify_backup == ("/usr/local/sbin/v6-backup",)              # its own wins
    assert v6.notify == "/usr/local/sbin/group-notify"
    for fragment in ("line 46: vrrp_instance WEB_V4 notify_fault: logger is not an absolute path",
                     "line 47: vrrp_instance WEB_V4 notify_stop: shell syntax in",
                     "vrrp_sync_group WEB: notify_master -> notify_master of instance WEB_V6",
                     "vrrp_sync_group WEB: notify_backup not translated: instance WEB_V6 has its own",
                     "TYPE is INSTANCE, not GROUP",
                     "line 71: notify /usr/local/sbin/admin-notify --verbose: not translated"):
        assert any(fragment in n for n in notes), fragment


def test_shell_lines_run_through_sh_and_plain_lines_are_split():
    cfg, notes = translate(WEB.read_text())
    scripts = {s.name: s.command for s in cfg.track_scripts}
    assert scripts == {
        "chk_web_port": ("/bin/sh", "-c", "</dev/tcp/127.0.0.1/80"),
        "chk_nginx_pid": ("/usr/bin/pgrep", "-x", "nginx"),
        "chk_backend": ("/bin/sh", "-c", "curl -sf http://127.0.0.1:8080/health | grep -q ok"),
    }
    assert any(n.startswith("line 12: vrrp_script chk_web_port: shell syntax in "
                            "'</dev/tcp/127.0.0.1/80'") for n in notes)


def test_vrrp_strict_and_no_accept_turn_accept_off():
    cfg, notes = translate(WEB.read_text())
    v4, v6, admin = cfg.instances
    assert (v4.accept, v6.accept, admin.accept) == (True, False, False)   # explicit accept wins
    assert any(n.startswith("line 6: vrrp_strict: accept = false on every instance") for n in notes)


def test_cli_no_instance_exits_1_and_prints_no_config(tmp_path, capsys):
    conf = tmp_path / "keepalived.conf"
    conf.write_text("global_defs {\n    router_id lb1\n}\nvirtual_server 192.0.2.10 80 {\n"
                    "    lb_algo rr\n}\nvrrp_instance HALF {\n    interface eth0\n}\n")
    parser = argparse.ArgumentParser()
    importers.setargs(parser)
    assert importers.cmdline(parser.parse_args(["keepalived", str(conf)])) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "note: vrrp_instance HALF (line 7): no vrid, virtual_ipaddress; instance not translated" in cap.err
    assert cap.err.endswith(f"vmacd import: nothing to translate from keepalived {conf}: no "
                            "vrrp_instance could be translated (the notes say why); no config written\n")


def test_cli_output_file_passes_check(tmp_path, capsys):
    from vmacd.cli import check
    out = tmp_path / "vmacd.toml"
    parser = argparse.ArgumentParser()
    importers.setargs(parser)
    assert importers.cmdline(parser.parse_args(["keepalived", str(CONF), "-o", str(out)])) == 0
    assert (tmp_path / "VI_1.key").read_text() == "1111\n"
    parser = argparse.ArgumentParser()
    check.setargs(parser)
    assert check.cmdline(parser.parse_args(["--no-preflight", "-c", str(out)])) == 0
    assert "ok: node LVS_DEVEL, 2 instances" in capsys.readouterr().out
