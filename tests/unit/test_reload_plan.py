"""Reload as a diff: unchanged instances are left alone, most changes are applied in place, only
interface, VRID, family, version, the vMAC device, the owner role or IPsec AH restart one."""
from __future__ import annotations

import pytest

from vmacd.config.load import load_text
from vmacd.reload import Plan, needs_restart, plan

BASE = """
[global]
node = "r1"

[auth.k]
type = "hmac-sha256"
key = "0123456789abcdef"

[track_script.web]
command = ["/bin/true"]

[resource.svc]
start = ["/bin/true"]
stop = ["/bin/true"]

[[instance]]
name = "lan"
interface = "eth1"
vrid = 1
virtual_ips = ["192.0.2.1"]
auth = "k"

[[instance]]
name = "wan"
interface = "eth2"
vrid = 2
virtual_ips = ["198.51.100.1"]
track_scripts = [{ name = "web" }]
resources = ["svc"]

[[instance]]
name = "dmz"
interface = "eth3"
vrid = 3
virtual_ips = ["203.0.113.1"]
"""


def cfg(text: str = BASE):
    return load_text(text, "x.toml")


def test_identical_configs_change_nothing():
    assert plan(cfg(), cfg()) == Plan((), (), (), (), ("lan", "wan", "dmz"))


def test_added_removed_restarted():
    new = BASE.replace('name = "dmz"', 'name = "dmz2"').replace("vrid = 1\n", "vrid = 11\n")
    p = plan(cfg(), cfg(new))
    assert (p.added, p.removed, p.restarted, p.updated, p.unchanged) == \
        (("dmz2",), ("dmz",), ("lan",), (), ("wan",))


@pytest.mark.parametrize("old, new", [
    ("0123456789abcdef", "fedcba9876543210"),                    # auth key
    ('virtual_ips = ["192.0.2.1"]', 'virtual_ips = ["192.0.2.1", "192.0.2.2"]'),
    ('vrid = 1\n', 'vrid = 1\npriority = 150\naccept = false\nadvert_interval = "100ms"\n'),
])
def test_in_place_changes(old, new):
    p = plan(cfg(), cfg(BASE.replace(old, new)))
    assert p.updated == ("lan",) and p.restarted == () and p.unchanged == ("wan", "dmz")


def test_changed_track_script_or_resource_is_applied_in_place():
    assert plan(cfg(), cfg(BASE.replace('command = ["/bin/true"]', 'command = ["/bin/false"]'))
                ).updated == ("wan",)
    assert plan(cfg(), cfg(BASE.replace('stop = ["/bin/true"]', 'stop = ["/bin/false"]'))
                ).updated == ("wan",)


def test_joining_a_sync_group_is_applied_in_place():
    p = plan(cfg(), cfg(BASE + '\n[sync_group.g]\ninstances = ["lan", "dmz"]\n'))
    assert p.updated == ("lan", "dmz") and p.unchanged == ("wan",)


@pytest.mark.parametrize("old, new, why", [
    ('interface = "eth1"', 'interface = "eth9"', "interface"),
    ('virtual_ips = ["192.0.2.1"]', 'virtual_ips = ["fe80::1", "2001:db8::1"]', "family"),
    ('vrid = 1\n', 'vrid = 1\nvmac = false\n', "vmac"),
    ('vrid = 1\n', 'vrid = 1\nvmac_mode = "private"\n', "vmac_mode"),
])
def test_what_restarts(old, new, why):
    a, b = cfg().instance("lan"), cfg(BASE.replace(old, new, 1)).instance("lan")
    assert any(why in k for k in needs_restart(a, b))


def test_global_change_leaves_instances_alone():
    p = plan(cfg(), cfg(BASE.replace('node = "r1"', 'node = "r2"')))
    assert p.unchanged == ("lan", "wan", "dmz") and not p.changed
