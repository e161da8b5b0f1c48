"""`vmacd import heartbeat`: the seed paper's ha.cf/authkeys/haresources become a loadable config."""
from __future__ import annotations

import argparse
import ipaddress
import pathlib

from vmacd.cli import importers
from vmacd.config.emit import dumps
from vmacd.config.import_heartbeat import import_heartbeat, read_dir
from vmacd.config.load import load_text

SEED = pathlib.Path(__file__).parent / "data" / "heartbeat-seed"


def translate(directory=SEED, node=None):
    result = import_heartbeat(*read_dir(str(directory)), node=node)
    return load_text(dumps(result.doc), "imported.toml", read_files=False), result.notes


def run(*argv):
    parser = argparse.ArgumentParser()
    importers.setargs(parser)
    return importers.cmdline(parser.parse_args(list(argv)))


def test_seed_translates_to_a_valid_config():
    cfg, _notes = translate()
    [inst] = cfg.instances
    assert cfg.global_.node == "linux-ha-a"
    assert (inst.interface, inst.vrid, inst.version, inst.priority) == ("eth1", 1, 3, 150)
    assert inst.advert_interval_cs == 200 and inst.warn_after == 10.0 and inst.startup_delay == 120.0
    assert inst.virtual_ips == (ipaddress.ip_interface("10.1.1.1/32"),)
    assert inst.unicast_peers == (ipaddress.ip_address("192.168.100.1"),)
    assert inst.preempt is True
    assert inst.resources[0].start == ("/usr/sbin/service", "httpd", "start")
    assert inst.resources[0].stop == ("/usr/sbin/service", "httpd", "stop")


def test_md5_key_becomes_a_shared_hmac_key_with_a_note():
    cfg, notes = translate()
    auth = cfg.instances[0].auth
    assert auth.type == "hmac-sha256" and len(auth.key) == 64
    # both nodes derive the same key from the same authkeys
    other, _ = translate(node="linux-ha-b")
    assert other.instances[0].auth.key == auth.key and other.instances[0].priority == 100
    assert any(n.startswith("authkeys: md5 -> hmac-sha256") for n in notes)


def test_every_untranslated_line_is_noted():
    _, notes = translate()
    assert any(n.startswith("ha.cf:3: deadtime 30: not translated") and "advert_interval = deadtime / 3 (10s)"
               in n for n in notes)
    assert any(n.startswith("ha.cf:6: udpport 694: not translated") for n in notes)
    assert any("httpd::start: translated as the service httpd" in n for n in notes)


def make_dir(tmp_path, hacf, authkeys, haresources):
    (tmp_path / "ha.cf").write_text(hacf)
    if authkeys is not None:
        (tmp_path / "authkeys").write_text(authkeys)
    (tmp_path / "haresources").write_text(haresources)
    return tmp_path


def test_crc_has_no_key_so_a_key_file_is_asked_for(tmp_path):
    d = make_dir(tmp_path, "keepalive 500ms\nbcast eth2\nnode a\nnode b\nauto_failback off\n",
                 "auth 2\n2 crc\n", "b 192.0.2.10/24 Filesystem::/dev/sdb1::/srv::ext4 \\\n  mysql\n")
    cfg, notes = translate(d)
    [inst] = cfg.instances
    assert inst.auth.key_file == "/etc/vmacd/heartbeat.key" and inst.auth.key is None
    assert any("crc has no secret and no security" in n for n in notes)
    assert (inst.advert_interval_cs, inst.preempt, inst.priority) == (50, False, 100)
    assert [r.name for r in inst.resources] == ["Filesystem", "mysql"]
    assert inst.resources[0].start == ("/etc/ha.d/resource.d/Filesystem", "/dev/sdb1", "/srv", "ext4",
                                       "start")


def test_dual_stack_group_splits_into_a_sync_group(tmp_path):
    d = make_dir(tmp_path, "ucast eth1 192.0.2.2\nucast eth1 2001:db8::2\nnode a\nping 192.0.2.254\n",
                 None, "a IPaddr2::192.0.2.10/24/eth1 IPv6addr::2001:db8::10/64 nginx\n")
    cfg, notes = translate(d, node="a")
    v4, v6 = cfg.instances
    assert (v4.name, v6.name) == ("ha1", "ha1-v6") and v4.vrid == v6.vrid == 1
    assert str(v6.virtual_ips[0]) == "fe80::1:1/64" and str(v6.virtual_ips[1]) == "2001:db8::10/64"
    assert v6.unicast_peers == (ipaddress.ip_address("2001:db8::2"),)
    assert v4.sync_group.instances == ("ha1", "ha1-v6")
    assert v4.track_scripts[0].script.command[-1] == "192.0.2.254" and v4.track_scripts[0].weight == -50
    assert v4.auth is None and any("authkeys: missing" in n for n in notes)


def test_group_without_ip_is_noted_not_dropped(tmp_path):
    d = make_dir(tmp_path, "bcast eth0\nnode a\n", "auth 1\n1 sha1 s3cret\n",
                 "a 192.0.2.1 httpd\na postfix\n")
    cfg, notes = translate(d)
    assert cfg.instance_names == ("ha1",)
    assert "haresources:2: no IP address: VRRP needs one; line not translated" in notes


def test_cli_prints_toml_and_notes(capsys):
    assert run("heartbeat", str(SEED)) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("# vmacd config translated from Heartbeat ")
    load_text(cap.out, "stdout.toml")          # inline derived key: loads with files read too
    assert "note: ha.cf:3: deadtime 30: not translated" in cap.err


def test_cli_missing_directory_exits_2(tmp_path, capsys):
    assert run("heartbeat", str(tmp_path / "nope")) == 2
    assert "vmacd import: cannot read" in capsys.readouterr().err


def test_cli_reports_an_invalid_result_with_exit_1(tmp_path, capsys):
    d = make_dir(tmp_path, "keepalive 2\nnode a\n", None, "a httpd\n")
    assert run("heartbeat", str(d)) == 1
    err = capsys.readouterr().err
    assert "error: <import>: instance: at least one [[instance]] is required" in err
