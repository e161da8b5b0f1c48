"""`vmacd import keepalived`: the vrrp_* subset becomes a loadable config; the rest is listed."""
from __future__ import annotations

import argparse
import ipaddress
import pathlib

from vmacd.cli import importers
from vmacd.config.emit import dumps
from vmacd.config.import_keepalived import import_keepalived, parse
from vmacd.config.load import load_text

CONF = pathlib.Path(__file__).parent / "data" / "keepalived" / "keepalived.conf"


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
    assert vi6.version == 3 and vi6.advert_interval_cs == 50 and vi6.vmac is False
    assert vi6.virtual_ips[0] == ipaddress.ip_interface("fe80::1:34/64")
    assert vi1.sync_group.instances == ("VI_1", "VI_6")


def test_nothing_is_dropped_silently():
    _, notes = translate(CONF.read_text())
    for fragment in ("line 4: notification_email", "line 23: state MASTER", "line 52: notify_master",
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
