"""`vmacd import heartbeat`: the seed's ha.cf/authkeys/haresources become a loadable config, with
the instance on the VIP's LAN of the box (a fake box here; tests/netns/test_import_lab.py runs it
in a lab node), services resolved as Heartbeat did, and a note for everything else."""
from __future__ import annotations

import argparse
import ipaddress
import os
import pathlib
import stat
import subprocess
from dataclasses import dataclass, field

import pytest

from vmacd.cli import check, importers
from vmacd.config.emit import dumps
from vmacd.config.import_haresources import mail_script, parse_haresources
from vmacd.config.import_heartbeat import import_heartbeat, read_dir
from vmacd.config.importing import PLACEHOLDER_IFACE, Service, Unusable
from vmacd.config.load import load, load_text

SEED = pathlib.Path(__file__).parent / "data" / "heartbeat-seed"
LAB = pathlib.Path(__file__).resolve().parents[2] / "netns-lab" / "ha.d"
TWO_NICS = {"lo": ["127.0.0.1/8"], "eth0": ["192.0.2.11/24", "fe80::11/64"],
            "eth1": ["198.51.100.11/24"]}


@dataclass
class FakeBox:
    """The lab's r1: the service LAN on eth0, the heartbeat link on eth1."""

    nics: dict[str, list[str]] = field(default_factory=lambda: dict(TWO_NICS))
    services: dict[str, Service] = field(default_factory=dict)
    host: str | None = "r1"
    offline: bool = False

    def networks(self):
        return [(i, ipaddress.ip_interface(a)) for i, addrs in self.nics.items() for a in addrs]

    def service(self, name):
        return self.services.get(name)

    def hostname(self):
        return self.host


def lsb(name):
    return Service("lsb", name, f"/etc/init.d/{name}")


def translate(directory=SEED, node=None, box=None, files_dir="/etc/vmacd"):
    result = import_heartbeat(*read_dir(str(directory)), node=node, box=box, files_dir=files_dir)
    return load_text(dumps(result.doc), "imported.toml", read_files=False), result


def make_dir(tmp_path, hacf, authkeys, haresources):
    (tmp_path / "ha.cf").write_text(hacf)
    if authkeys is not None:
        (tmp_path / "authkeys").write_text(authkeys)
    (tmp_path / "haresources").write_text(haresources)
    return tmp_path


def noted(result, *fragments):
    for fragment in fragments:
        assert any(fragment in n for n in result.notes), (fragment, result.notes)


# ------------------------------------------------------------------ the seed
def test_seed_offline_is_valid_with_a_placeholder_and_says_what_to_replace():
    cfg, result = translate()
    [inst] = cfg.instances
    assert cfg.global_.node == "linux-ha-a"
    assert (inst.interface, inst.vrid, inst.version, inst.priority) == (PLACEHOLDER_IFACE, 1, 3, 150)
    assert inst.advert_interval_cs == 200 and inst.warn_after == 10.0 and inst.startup_delay == 120.0
    assert inst.virtual_ips == (ipaddress.ip_interface("10.1.1.1/32"),)
    assert inst.unicast_peers == () and inst.preempt is True and inst.accept is True
    [res] = inst.resources
    assert res.start == ("/usr/sbin/service", "httpd", "start")
    assert res.stop == ("/usr/sbin/service", "httpd", "stop")
    assert res.monitor == ("/usr/sbin/service", "httpd", "status")
    noted(result, 'interface "CHANGE-ME" written (offline): replace it with the service LAN\'s interface',
          "and /32 with that LAN's prefix length",
          "written as the service httpd (/usr/sbin/service httpd start|stop|status), not looked up")
    assert result.todo == [('interface "CHANGE-ME": the service LAN\'s interface for 10.1.1.1 '
                            "(and its prefix length)")]


def test_seed_media_lines_are_heartbeat_paths_not_the_vrrp_lan():
    _, result = translate()
    noted(result, "ha.cf:7: bcast eth1: Heartbeat's heartbeat path, not used: VRRP advertises by "
                  "multicast (224.0.0.18",
          "ha.cf:8: ucast eth1 192.168.100.1: dropped: 192.168.100.1 is not on the VIP's LAN")


def test_seed_on_a_box_without_httpd_names_the_debian_services():
    box = FakeBox(nics={"eth0": ["10.1.1.5/24"], "eth1": ["192.168.100.1/24"]},
                  services={"lighttpd": lsb("lighttpd")}, host="linux-ha-a")
    cfg, result = translate(box=box)
    [inst] = cfg.instances
    assert inst.interface == "eth0" and str(inst.virtual_ips[0]) == "10.1.1.1/24"
    assert inst.unicast_peers == ()      # 192.168.100.1: this box, on the heartbeat link
    noted(result, "haresources:1: httpd::start: no service httpd on this box (no "
                  "/etc/ha.d/resource.d/httpd, /etc/init.d/httpd or httpd.service); on Debian it is "
                  "apache2, lighttpd or nginx (here: lighttpd): change the start, stop and monitor "
                  "commands of [resource.httpd]",
          "config written for node linux-ha-a (this box's hostname)",
          "ha.cf:8: ucast eth1 192.168.100.1: dropped: 192.168.100.1 is not on the VIP's LAN "
          "(eth0 10.1.1.0/24) (an address of this box")
    assert not result.todo


def test_lab_copy_lands_on_the_service_lan_with_its_prefix():
    cfg, result = translate(LAB, node="linux-ha-a", box=FakeBox())
    [inst] = cfg.instances
    assert inst.interface == "eth0"
    assert inst.virtual_ips == (ipaddress.ip_interface("192.0.2.254/24"),)
    assert inst.unicast_peers == ()
    noted(result, "haresources:1: 192.0.2.254: on eth0, whose subnet 192.0.2.0/24 holds it; /24 as "
                  "on that LAN",
          "ha.cf:7: bcast eth1: Heartbeat's heartbeat path, not used: VRRP advertises by multicast "
          "(224.0.0.18, IPv6 ff02::12) on the VIP's LAN (eth0 192.0.2.0/24)",
          "ha.cf:8: ucast eth1 198.51.100.11: dropped: 198.51.100.11 is not on the VIP's LAN")


def test_the_lab_copy_is_the_seed_with_documentation_addresses():
    for name in ("ha.cf", "authkeys", "haresources"):
        seed = (SEED / name).read_text().splitlines()
        lab = (LAB / name).read_text().splitlines()
        assert len(seed) == len(lab), name           # same line numbers in notes
        mapped = [line.replace("192.168.100.1", "198.51.100.11").replace("10.1.1.1", "192.0.2.254")
                  for line in seed]
        assert [a for a, b in zip(mapped, lab, strict=True) if a != b and not a.startswith("#")] == [], name


def test_md5_key_becomes_the_same_hmac_key_on_every_node():
    cfg, result = translate()
    auth = cfg.instances[0].auth
    assert auth.type == "hmac-sha256" and len(auth.key) == 64
    other, _ = translate(node="linux-ha-b")
    assert other.instances[0].auth.key == auth.key and other.instances[0].priority == 100
    noted(result, "authkeys: md5 -> hmac-sha256")


def test_every_untranslated_line_is_noted():
    _, result = translate()
    noted(result, "ha.cf:3: deadtime 30: not translated",
          "advert_interval = deadtime / 3 (10s)", "ha.cf:6: udpport 694: not translated",
          "ha.cf:5: initdead 120: startup_delay = 2m",
          "httpd::start: the service httpd (Heartbeat passed 'start' as its argument)")


# ------------------------------------------------------------------ nodes
def test_node_must_be_a_node_of_hacf():
    with pytest.raises(Unusable, match=r"--node linux-ha-c: not a node of ha.cf \(its nodes: "
                                       r"linux-ha-a, linux-ha-b\)"):
        translate(node="linux-ha-c")


def test_node_defaults_to_this_box_when_hacf_lists_it():
    cfg, _ = translate(box=FakeBox(host="linux-ha-b"))
    assert cfg.global_.node == "linux-ha-b" and cfg.instances[0].priority == 100
    cfg, result = translate(box=FakeBox(host="elsewhere"))
    assert cfg.global_.node == "linux-ha-a"
    noted(result, "config written for node linux-ha-a (this box is elsewhere, not a node of ha.cf)")


# ------------------------------------------------------------------ media lines
def test_ucast_on_the_lan_kept_heartbeat_link_dropped(tmp_path):
    d = make_dir(tmp_path, "ucast eth0 192.0.2.11\nucast eth0 192.0.2.12\nucast eth1 198.51.100.12\n"
                           "mcast eth1 225.0.0.1 694 1 0\nserial /dev/ttyS0\nnode a\nnode b\n",
                 None, "a 192.0.2.254\n")
    cfg, result = translate(d, node="b", box=FakeBox())
    [inst] = cfg.instances
    assert [str(p) for p in inst.unicast_peers] == ["192.0.2.11", "192.0.2.12"]
    assert inst.priority == 100
    noted(result, "ha.cf:1: ucast eth0 192.0.2.11: 192.0.2.11 is on the VIP's LAN: unicast_peers of "
                  "ha1 (an address of this box: one ha.cf serves every node; vmacd skips its own",
          "ha.cf:3: ucast eth1 198.51.100.12: dropped",
          "ha.cf:4: mcast eth1 225.0.0.1 694 1 0: Heartbeat's heartbeat path, not used",
          "; Heartbeat's group is not used", "ha.cf:5: serial /dev/ttyS0: Heartbeat's heartbeat path")


def test_bcast_on_the_vip_lan_says_so(tmp_path):
    d = make_dir(tmp_path, "bcast eth0\nnode a\n", None, "a 192.0.2.254\n")
    _, result = translate(d, box=FakeBox())
    noted(result, "ha.cf:1: bcast eth0: eth0 is the VIP's LAN: VRRP advertises there by multicast")


# ------------------------------------------------------------------ addresses
def test_address_spec_interface_and_prefix_win_and_a_mismatch_is_noted(tmp_path):
    d = make_dir(tmp_path, "node a\n", None,
                 "a IPaddr2::192.0.2.10/25/eth1:0 IPaddr::203.0.113.5 IPaddr::192.0.2.11\n")
    cfg, result = translate(d, box=FakeBox())
    first, second, eth0 = cfg.instances
    assert (first.interface, [str(v) for v in first.virtual_ips]) == ("eth1", ["192.0.2.10/25"])
    assert second.name == "ha1-CHANGE-ME" and second.interface == PLACEHOLDER_IFACE
    assert cfg.instances[0].sync_group.instances == ("ha1", "ha1-CHANGE-ME", "ha1-eth0")
    assert eth0.name == "ha1-eth0" and [str(v) for v in eth0.virtual_ips] == ["192.0.2.11/24"]
    noted(result, "IPaddr2::192.0.2.10/25/eth1:0: the spec names eth1, but on this box 192.0.2.10 lies "
                  "in the subnet of eth0 (192.0.2.0/24); eth1 kept",
          "IPaddr::203.0.113.5: interface \"CHANGE-ME\" written (no interface on this box has an "
          "address in a subnet holding 203.0.113.5)",
          "IPaddr::192.0.2.11: 192.0.2.11 is an address of eth0 on this box right now")
    assert first.resources == () and eth0.resources == ()


def test_dual_stack_group_splits_into_a_sync_group_with_resources_on_the_first(tmp_path):
    d = make_dir(tmp_path, "node a\nping 192.0.2.1\n", None,
                 "a IPaddr2::192.0.2.10/24 IPv6addr::2001:db8::10/64 nginx\n")
    box = FakeBox(services={
        "nginx": Service("systemd", "nginx.service", "/lib/systemd/system/nginx.service")})
    box.nics["eth0"] = [*TWO_NICS["eth0"], "2001:db8::11/64"]
    cfg, result = translate(d, node="a", box=box)
    v4, v6 = cfg.instances
    assert (v4.name, v6.name) == ("ha1", "ha1-v6") and v4.vrid == v6.vrid == 1
    assert v4.interface == v6.interface == "eth0"
    assert [str(v) for v in v6.virtual_ips] == ["fe80::1:1/64", "2001:db8::10/64"]
    assert v4.sync_group.instances == ("ha1", "ha1-v6")
    assert [r.name for r in v4.resources] == ["nginx"] and v6.resources == ()
    nginx = v4.resources[0]
    assert nginx.start == ("/usr/bin/systemctl", "start", "nginx.service")
    assert nginx.monitor == ("/usr/bin/systemctl", "is-active", "--quiet", "nginx.service")
    assert v4.track_scripts[0].script.command[-1] == "192.0.2.1" and v4.track_scripts[0].weight == -50
    assert v4.auth is None
    noted(result, "authkeys: missing", "the systemd unit nginx.service", "ha1 runs the group's resources")


# ------------------------------------------------------------------ resources
def test_services_resolve_as_heartbeat_did(tmp_path):
    d = make_dir(tmp_path, "node a\n", None,
                 "a 192.0.2.254 drbddisk::r0 Filesystem::/dev/drbd0::/srv/www::ext4::noatime \\\n"
                 "  Filesystem::-Lweb::/var/lib/web apache2 postgresql::main IPsrcaddr::192.0.2.254 \\\n"
                 "  SendArp::192.0.2.254/eth0 mystery::x\n")
    box = FakeBox(services={
        "drbddisk": Service("agent", "drbddisk", "/etc/ha.d/resource.d/drbddisk"),
        "apache2": lsb("apache2"), "postgresql": lsb("postgresql")})
    cfg, result = translate(d, box=box)
    [inst] = cfg.instances
    res = {r.name: r for r in inst.resources}
    assert list(res) == ["drbddisk-r0", "fs-srv_www", "fs-var_lib_web", "apache2", "postgresql",
                         "IPsrcaddr-192.0.2.254", "mystery"]
    assert res["drbddisk-r0"].start == ("/etc/ha.d/resource.d/drbddisk", "r0", "start")
    assert res["drbddisk-r0"].monitor == ("/etc/ha.d/resource.d/drbddisk", "r0", "status")
    fs = res["fs-srv_www"]
    assert (fs.kind, fs.fs.device, fs.fs.mountpoint, fs.fs.fstype, fs.fs.options) == \
        ("filesystem", "/dev/drbd0", "/srv/www", "ext4", "noatime")
    assert res["fs-var_lib_web"].fs.device == "LABEL=web" and res["fs-var_lib_web"].fs.fstype == "auto"
    assert res["apache2"].start == ("/etc/init.d/apache2", "start")
    assert res["apache2"].monitor == ("/etc/init.d/apache2", "status")
    assert res["postgresql"].stop == ("/etc/init.d/postgresql", "main", "stop")
    assert res["IPsrcaddr-192.0.2.254"].start == ("/etc/ha.d/resource.d/IPsrcaddr", "192.0.2.254", "start")
    assert res["mystery"].start == ("/usr/sbin/service", "mystery", "start")
    noted(result, "IPsrcaddr::192.0.2.254: needs the Heartbeat resource agent "
                  "/etc/ha.d/resource.d/IPsrcaddr, not found on this box",
          "SendArp::192.0.2.254/eth0: not translated: vmacd sends gratuitous ARPs",
          "mystery::x: arguments x not passed", "mystery::x: no service mystery on this box",
          'Filesystem::/dev/drbd0::/srv/www::ext4::noatime: a kind = "filesystem" resource')


def test_mailto_becomes_a_notify_script(tmp_path):
    d = make_dir(tmp_path, "node a\n", None, "a 192.0.2.254 MailTo::ops@example.com,root::web\n")
    cfg, result = translate(d, box=FakeBox(), files_dir=str(tmp_path))
    [inst] = cfg.instances
    [script] = result.files
    assert inst.notify == script.path == str(tmp_path / "mailto-ha1.sh") and script.mode == 0o755
    assert "/usr/bin/mail -s web\": $what on $(uname -n)\" -- ops@example.com root" in script.content


def test_the_mailto_script_mails_takeover_and_release(tmp_path):
    """Run the generated script as vmacd would, with a mail command that records its call."""
    fake = tmp_path / "mail"
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@" >> "$0.calls"\necho >> "$0.calls"\n'
                    'cat >> "$0.calls"\n')
    fake.chmod(0o755)
    group = parse_haresources([(3, ["a", "192.0.2.254", "MailTo::ops@example.com,root::web it's"])],
                              FakeBox(), [])[0]
    script = mail_script(group, "ha1", str(tmp_path / "mailto-ha1.sh"), mail=str(fake))
    path = pathlib.Path(script.path)
    path.write_text(script.content)
    path.chmod(script.mode)
    host = os.uname().nodename
    subprocess.run([str(path), "INSTANCE", "ha1", "MASTER", "150"], check=True, timeout=10)
    subprocess.run([str(path), "INSTANCE", "ha1", "FAULT", "0"], check=True, timeout=10)
    assert (tmp_path / "mail.calls").read_text().splitlines() == [
        f"-s|web it's: takeover on {host}|--|ops@example.com|root|",
        f"INSTANCE ha1 on {host}: MASTER, priority 150",
        f"-s|web it's: not master (FAULT) on {host}|--|ops@example.com|root|",
        f"INSTANCE ha1 on {host}: FAULT, priority 0",
    ]


def test_auto_failback_off_and_legacy(tmp_path):
    for word in ("off", "legacy"):
        d = make_dir(tmp_path, f"node a\nauto_failback {word}\n", None, "a 192.0.2.254\n")
        cfg, result = translate(d)
        assert cfg.instances[0].preempt is False
        noted(result, f"ha.cf:2: auto_failback {word}: preempt = false")
    noted(result, "(legacy read as off)")


def test_crc_has_no_key_so_a_key_file_is_asked_for(tmp_path):
    d = make_dir(tmp_path, "keepalive 500ms\nbcast eth2\nnode a\nnode b\n", "auth 2\n2 crc\n",
                 "b 192.0.2.10/24\n")
    cfg, result = translate(d, files_dir="/etc/vmacd")
    [inst] = cfg.instances
    assert inst.auth.key_file == "/etc/vmacd/heartbeat.key" and inst.auth.key is None
    assert (inst.advert_interval_cs, inst.priority) == (50, 100)
    noted(result, "crc has no secret and no security")


def test_group_without_ip_is_noted_not_dropped(tmp_path):
    d = make_dir(tmp_path, "bcast eth0\nnode a\n", "auth 1\n1 sha1 s3cret\n",
                 "a 192.0.2.1 httpd\na postfix\n")
    cfg, result = translate(d)
    assert cfg.instance_names == ("ha1",)
    noted(result, "haresources:2: no IP address: VRRP needs one; line not translated "
                  "(resources postfix left out)")


# ------------------------------------------------------------------ the CLI
def run(*argv):
    parser = argparse.ArgumentParser()
    importers.setargs(parser)
    return importers.cmdline(parser.parse_args(list(argv)))


def run_check(*argv):
    parser = argparse.ArgumentParser()
    check.setargs(parser)
    return check.cmdline(parser.parse_args(list(argv)))


def test_cli_prints_toml_and_notes(capsys):
    assert run("heartbeat", "--offline", str(SEED)) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("# vmacd config translated from Heartbeat ")
    assert '# before use, replace interface "CHANGE-ME"' in cap.out
    load_text(cap.out, "stdout.toml")          # inline derived key: loads with files read too
    assert "note: ha.cf:3: deadtime 30: not translated" in cap.err
    assert "note: the key is inline: save the config with mode 0600" in cap.err


def test_cli_output_file_and_key_file_are_0600_under_umask_022(tmp_path, capsys):
    out = tmp_path / "vmacd.toml"
    old = os.umask(0o022)
    try:
        assert run("heartbeat", "--offline", str(SEED), "-o", str(out)) == 0
    finally:
        os.umask(old)
    cap = capsys.readouterr()
    assert cap.out == ""
    key = tmp_path / "heartbeat.key"
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(key.stat().st_mode) == 0o600
    cfg = load(str(out))                        # files read, modes checked
    assert cfg.instances[0].auth.key_file == str(key) and len(cfg.instances[0].auth.key) == 64
    assert f"note: wrote {key} (mode 0600): key of [auth.heartbeat]" in cap.err
    assert run_check("--no-preflight", "-c", str(out)) == 0


def test_cli_mailto_script_written_beside_the_output(tmp_path, capsys):
    (tmp_path / "ha").mkdir()
    d = make_dir(tmp_path / "ha", "node a\n", None, "a 192.0.2.254/24 MailTo::root\n")
    assert run("heartbeat", "--offline", str(d), "-o", str(tmp_path / "vmacd.toml")) == 0
    script = tmp_path / "mailto-ha1.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755 and script.read_text().startswith("#!/bin/sh")
    capsys.readouterr()
    assert run("heartbeat", "--offline", str(d)) == 0
    err = capsys.readouterr().err
    assert "note: create /etc/vmacd/mailto-ha1.sh (chmod 755), the notify script (MailTo) of " \
           "instance ha1, with:\n#!/bin/sh\n" in err


def test_cli_unknown_node_exits_2(capsys):
    assert run("heartbeat", str(SEED), "--node", "linux-ha-c") == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == ("vmacd import: --node linux-ha-c: not a node of ha.cf "
                       "(its nodes: linux-ha-a, linux-ha-b)\n")


def test_cli_missing_directory_exits_2(tmp_path, capsys):
    assert run("heartbeat", str(tmp_path / "nope")) == 2
    assert "vmacd import: cannot read" in capsys.readouterr().err


def test_cli_nothing_to_translate_exits_1_with_nothing_on_stdout(tmp_path, capsys):
    d = make_dir(tmp_path, "keepalive 2\nnode a\n", None, "a httpd\n")
    assert run("heartbeat", "--offline", str(d), "-o", str(tmp_path / "out.toml")) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and not (tmp_path / "out.toml").exists()
    assert "vmacd import: nothing to translate from Heartbeat" in cap.err
    assert "no haresources line with an IP address could be translated" in cap.err
