"""Preflight rules against a fake system: owner rule, interfaces, sysctls, sockets, commands."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import pytest

from vmacd.config.load import load_text
from vmacd.linux.preflight import ERROR, WARNING, LinuxSystem, preflight


@dataclass
class FakeSystem:
    addrs: dict[str, list[str]] = field(default_factory=lambda: {
        "eth1": ["192.0.2.1", "fe80::a"], "eth0": ["10.0.0.1"]})
    carriers: dict[str, bool] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=lambda: {
        "net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
        "net/ipv4/conf/all/rp_filter": "0"})
    raw_error: str | None = None
    macvlan_ok: bool | None = True
    executables: set[str] = field(default_factory=lambda: {"/bin/true"})
    files: set[str] = field(default_factory=set)
    wifi: set[str] = field(default_factory=set)
    services: dict[str, str] = field(default_factory=dict)     # name -> where it was found

    def interfaces(self):
        return list(self.addrs)

    def addresses(self, ifname):
        return [ipaddress.ip_address(a) for a in self.addrs[ifname]]

    def carrier(self, ifname):
        return self.carriers.get(ifname, True)

    def wireless(self, ifname):
        return ifname in self.wifi

    def sysctl(self, name):
        return self.sysctls.get(name)

    def raw_socket(self, family):
        return self.raw_error

    def macvlan(self):
        return self.macvlan_ok

    def executable(self, command):
        return command in self.executables

    def exists(self, path):
        return path in self.files

    def service(self, name):
        return self.services.get(name)


DEFAULT_VIPS = 'virtual_ips = ["192.0.2.254/24"]'


def cfg(instance: str = "", extra: str = ""):
    text = ('[[instance]]\nname = "lan"\ninterface = "eth1"\nvrid = 7\n'
            f'{instance or DEFAULT_VIPS}\n{extra}')
    return load_text(text, "t.toml")


def rendered(config, system=None):
    return [f.render("t.toml") for f in preflight(config, system or FakeSystem())]


def test_a_sane_box_has_no_findings():
    assert rendered(cfg()) == []


@pytest.mark.rfc("9568-5.2.4-1", "holds")
def test_owner_with_255_and_its_own_address_passes():
    assert rendered(cfg('virtual_ips = ["192.0.2.1/24"]\npriority = 255\nvmac = false')) == []


@pytest.mark.rfc("9568-5.2.4-1", "refused")
def test_owner_with_another_priority_refused():
    assert rendered(cfg('virtual_ips = ["192.0.2.1/24"]\npriority = 150')) == [
        ("t.toml: instance[lan].priority: error: 192.0.2.1 is an address of eth1, so this router "
         "owns it and must use priority = 255 (RFC 9568 §5.2.4), got 150")]


@pytest.mark.rfc("9568-5.2.4-2", "refused")
def test_255_on_a_non_owner_refused():
    [f] = preflight(cfg('virtual_ips = ["192.0.2.254/24"]\npriority = 255'), FakeSystem())
    assert (f.severity, f.path) == (ERROR, "instance[lan].priority")
    assert "priority 255 is for the address owner" in f.message


def test_owner_warnings_preempt_and_vmac():
    found = preflight(cfg('virtual_ips = ["192.0.2.1/24"]\npriority = 255\npreempt = false'), FakeSystem())
    assert [(f.severity, f.path) for f in found] == [
        (WARNING, "instance[lan].preempt"), (WARNING, "instance[lan].vmac")]


def test_missing_interface_is_an_error_and_stops_its_other_checks():
    config = load_text('[[instance]]\nname = "lan"\ninterface = "eth9"\nvrid = 7\n' + DEFAULT_VIPS, "t")
    assert rendered(config) == [
        "t.toml: instance[lan].interface: error: interface eth9 does not exist"]


def test_carrier_down_and_wireless_are_warnings():
    found = preflight(cfg(), FakeSystem(carriers={"eth1": False}, wifi={"eth1"}))
    assert [(f.severity, f.path) for f in found] == [
        (WARNING, "instance[lan].interface"), (WARNING, "instance[lan].vmac")]
    assert "no carrier" in found[0].message


def test_raw_socket_refused_is_an_error():
    [f] = preflight(cfg(), FakeSystem(raw_error="Operation not permitted"))
    assert f.render("t.toml") == ("t.toml: system: error: cannot open an IPv4 raw socket for protocol 112: "
                                  "Operation not permitted")


def test_unknown_macvlan_support_is_a_warning_only_with_vmac():
    assert [f.severity for f in preflight(cfg(), FakeSystem(macvlan_ok=None))] == [WARNING]
    assert preflight(cfg('virtual_ips = ["192.0.2.254/24"]\nvmac = false'), FakeSystem(macvlan_ok=None)) == []


def test_sysctls_use_the_max_of_all_and_the_device():
    bad = {"net/ipv4/conf/all/arp_ignore": "0", "net/ipv4/conf/eth1/arp_ignore": "0",
           "net/ipv4/conf/all/arp_announce": "0", "net/ipv4/conf/eth1/arp_announce": "1",
           "net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/eth1/rp_filter": "1"}
    msgs = [f.message for f in preflight(cfg(), FakeSystem(sysctls=bad))]
    assert [m.split(" is ")[0] for m in msgs] == ["arp_ignore on eth1", "arp_announce on eth1",
                                                  "rp_filter on eth1"]
    assert all("vmacd sets it at run time" in m for m in msgs)
    good = dict(bad, **{"net/ipv4/conf/eth1/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
                        "net/ipv4/conf/eth1/rp_filter": "2"})
    assert preflight(cfg(), FakeSystem(sysctls=good)) == []


def test_sysctls_not_checked_without_vmac():
    bad = {"net/ipv4/conf/all/arp_ignore": "0"}
    assert preflight(cfg('virtual_ips = ["192.0.2.254/24"]\nvmac = false'), FakeSystem(sysctls=bad)) == []


def test_ipv6_needs_a_link_local_on_the_parent():
    v6 = cfg('virtual_ips = ["fe80::1/64"]')
    assert preflight(v6, FakeSystem()) == []
    [f] = preflight(v6, FakeSystem(addrs={"eth1": ["192.0.2.1"]}))
    assert "no IPv6 link-local address" in f.message and f.severity == ERROR
    [f] = preflight(v6, FakeSystem(sysctls={"net/ipv6/conf/eth1/disable_ipv6": "1"}))
    assert f.message == "IPv6 is disabled on eth1"


SECOND_V2 = ('[[instance]]\nname = "old"\ninterface = "eth1"\nvrid = 8\nversion = 2\n'
             'virtual_ips = ["192.0.2.9"]\n')


@pytest.mark.rfc("9568-8.4.2-1", "holds")
def test_mixed_v2_v3_warns():
    found = preflight(cfg(extra=SECOND_V2), FakeSystem())
    assert [(f.severity, f.path) for f in found] == [(WARNING, "instance")]
    assert "only while migrating" in found[0].message


@pytest.mark.rfc("9568-8.4.2-1", "refused")
def test_no_mixed_warning_when_all_one_version():
    assert preflight(cfg(extra=SECOND_V2.replace("version = 2\n", "")), FakeSystem()) == []


def test_commands_and_tracked_things():
    extra = ('track_interfaces = [{ name = "eth7" }]\ntrack_files = [{ path = "/run/w" }]\n'
             'track_scripts = [{ name = "s" }]\nresources = ["r"]\nnotify = "/bin/nope"\n'
             '[track_script.s]\ncommand = ["/usr/bin/missing"]\n'
             '[resource.r]\nstart = ["/bin/true"]\nstop = ["/sbin/gone"]\n')
    text = 'virtual_ips = ["192.0.2.254/24"]\n' + extra
    assert rendered(cfg(text)) == [
        "t.toml: instance[lan].track_interfaces[0]: warning: interface eth7 does not exist (counts as down)",
        "t.toml: instance[lan].track_files[0]: warning: /run/w does not exist (counts as 0 until created)",
        "t.toml: track_script.s.command: error: /usr/bin/missing is not an executable file",
        "t.toml: resource.r.stop: error: /sbin/gone is not an executable file",
        "t.toml: instance[lan].notify: error: /bin/nope is not an executable file",
    ]


def test_linux_system_reads_this_box():
    sysm = LinuxSystem()
    assert "lo" in sysm.interfaces()
    assert ipaddress.ip_address("127.0.0.1") in sysm.addresses("lo")
    assert sysm.sysctl("net/ipv4/conf/lo/arp_ignore") in {"0", "1", "2", "3", "8"}
    assert sysm.sysctl("net/ipv4/conf/nonexistent0/arp_ignore") is None
    assert sysm.executable("sh") and not sysm.executable("/nonexistent/x")
    import os
    problem = sysm.raw_socket(socket.AF_INET)
    if os.geteuid() == 0:
        assert problem is None
    else:
        assert "CAP_NET_RAW" in problem


SERVICES = """virtual_ips = ["192.0.2.254/24"]
resources = ["web", "db", "cache", "old"]
notify_master = ["/usr/local/bin/on-master", "x"]
[resource.web]
start = ["/usr/sbin/service", "httpd", "start"]
stop = ["/usr/sbin/service", "httpd", "stop"]
monitor = ["/usr/sbin/service", "httpd", "status"]
[resource.db]
start = ["/usr/bin/systemctl", "--no-block", "start", "mariadb.service"]
stop = ["/usr/bin/systemctl", "stop", "mariadb"]
[resource.cache]
start = ["/usr/bin/systemctl", "start", "memcached"]
stop = ["/usr/bin/systemctl", "stop", "memcached"]
[resource.old]
start = ["/etc/init.d/httpd", "start"]
stop = ["/etc/init.d/lighttpd", "stop"]
"""


def test_services_must_exist_on_the_box_with_the_debian_names_as_a_hint():
    box = FakeSystem(executables={"/usr/sbin/service", "/usr/bin/systemctl", "/etc/init.d/lighttpd"},
                     services={"lighttpd": "/etc/init.d/lighttpd",
                               "mariadb": "/lib/systemd/system/mariadb.service",
                               "mariadb.service": "/lib/systemd/system/mariadb.service"})
    hint = "; on Debian it is apache2, lighttpd or nginx (here: lighttpd)"
    assert rendered(cfg(SERVICES), box) == [
        "t.toml: resource.web.start: error: service httpd does not exist on this box (no "
        "/etc/init.d/httpd, no httpd.service unit)" + hint,
        "t.toml: resource.web.stop: error: service httpd does not exist on this box (no "
        "/etc/init.d/httpd, no httpd.service unit)" + hint,
        "t.toml: resource.web.monitor: error: service httpd does not exist on this box (no "
        "/etc/init.d/httpd, no httpd.service unit)" + hint,
        ("t.toml: resource.cache.start: error: service memcached does not exist on this box (no "
         "/etc/init.d/memcached, no memcached.service unit)"),
        ("t.toml: resource.cache.stop: error: service memcached does not exist on this box (no "
         "/etc/init.d/memcached, no memcached.service unit)"),
        "t.toml: resource.old.start: error: no init script /etc/init.d/httpd: service httpd does not "
        "exist on this box" + hint,
        "t.toml: instance[lan].notify_master: error: /usr/local/bin/on-master is not an executable file",
    ]


def test_bare_program_names_are_looked_up_in_path():
    text = ('virtual_ips = ["192.0.2.254/24"]\ntrack_scripts = [{ name = "s" }]\n'
            '[track_script.s]\ncommand = ["pidof", "nginx"]\n')
    assert rendered(cfg(text)) == [("t.toml: track_script.s.command: error: pidof is not an "
                                    "executable found in PATH")]
    assert rendered(cfg(text), FakeSystem(executables={"pidof"})) == []


def test_accept_false_with_a_service_is_a_warning():
    text = ('virtual_ips = ["192.0.2.254/24"]\naccept = false\nresources = ["r"]\n'
            '[resource.r]\nstart = ["/bin/true"]\nstop = ["/bin/true"]\n')
    assert rendered(cfg(text)) == [
        ("t.toml: instance[lan].accept: warning: false: as master this router drops traffic "
         "addressed to the VIPs (the RFC 9568 default), so the service it runs or tracks is not "
         "reachable through them; set accept = true (the default)")]
    assert rendered(cfg('virtual_ips = ["192.0.2.254/24"]\naccept = false')) == []


def test_linux_system_finds_services_like_service_does():
    sysm = LinuxSystem()
    assert sysm.service("procps") == "/etc/init.d/procps"       # Debian's own init script
    assert sysm.service("no-such-service-here") is None


def test_the_importer_placeholder_interface_says_what_it_is():
    text = 'virtual_ips = ["192.0.2.254/24"]'
    config = load_text(f'[[instance]]\nname = "ha1"\ninterface = "CHANGE-ME"\nvrid = 1\n{text}\n', "t.toml")
    assert rendered(config) == [("t.toml: instance[ha1].interface: error: interface CHANGE-ME does "
                                 "not exist: the importer's placeholder; write the interface of the LAN "
                                 "that holds the VIPs")]
