"""vmacd.linux.discover: this box's subnets (netifaces) and services found as Heartbeat found them."""
from __future__ import annotations

import ipaddress
import os

from vmacd.config.services import controlled_service, debian_names
from vmacd.linux.discover import LocalBox


def put(root, rel, text="#!/bin/sh\n", mode=0o755):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_networks_have_their_prefix():
    nets = LocalBox().networks()
    assert ("lo", ipaddress.ip_interface("127.0.0.1/8")) in nets
    if os.path.exists("/proc/net/if_inet6"):
        assert ("lo", ipaddress.ip_interface("::1/128")) in nets


def test_agent_then_init_script_then_unit(tmp_path):
    box = LocalBox(str(tmp_path))
    put(tmp_path, "lib/systemd/system/web.service", "[Service]\n", 0o644)
    assert box.service("web").kind == "systemd" and box.service("web").name == "web.service"
    put(tmp_path, "etc/init.d/web")
    assert (box.service("web").kind, box.service("web").path) == ("lsb", "/etc/init.d/web")
    put(tmp_path, "etc/ha.d/resource.d/web")
    assert (box.service("web").kind, box.service("web").path) == ("agent", "/etc/ha.d/resource.d/web")
    assert box.service("web", agents=False).kind == "lsb"      # what `service web` can run


def test_not_executable_masked_and_odd_names_do_not_count(tmp_path):
    box = LocalBox(str(tmp_path))
    put(tmp_path, "etc/init.d/plain", mode=0o644)
    assert box.service("plain") is None
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    put(tmp_path, "lib/systemd/system/gone.service", "[Service]\n", 0o644)
    os.symlink("/dev/null", tmp_path / "etc/systemd/system/gone.service")
    assert box.service("gone") is None
    assert box.service("../init.d/plain") is None and box.service("") is None
    put(tmp_path, "usr/lib/systemd/system/data.mount", "[Mount]\n", 0o644)
    assert box.service("data.mount").path == "/usr/lib/systemd/system/data.mount"


def test_which_service_a_command_controls():
    assert controlled_service(["/usr/sbin/service", "httpd", "start"]) == "httpd"
    assert (controlled_service(["/usr/bin/systemctl", "--no-block", "start", "nginx.service"])
            == "nginx.service")
    assert controlled_service(["systemctl", "is-active", "--quiet", "nginx"]) == "nginx"
    assert controlled_service(["/usr/bin/systemctl", "daemon-reload"]) is None
    assert controlled_service(["/etc/init.d/apache2", "status"]) == "apache2"
    assert controlled_service(["/bin/sh", "-c", "service x start"]) is None
    assert debian_names("httpd") == ("apache2", "lighttpd", "nginx")
    assert debian_names("nginx") == () and debian_names("named") == ("bind9",)
