"""Reload diff: unchanged instances are left alone; a change to what they reference marks them."""
from __future__ import annotations

from vmacd.config.diff import ConfigDiff, diff
from vmacd.config.load import load_text

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


def test_identical_configs_have_an_empty_diff():
    d = diff(cfg(), cfg())
    assert d == ConfigDiff((), (), (), ("lan", "wan", "dmz"), False)


def test_added_removed_changed():
    new = BASE.replace('name = "dmz"', 'name = "dmz2"').replace("vrid = 1\n", "vrid = 11\n")
    d = diff(cfg(), cfg(new))
    assert (d.added, d.removed, d.changed, d.unchanged) == (("dmz2",), ("dmz",), ("lan",), ("wan",))


def test_changed_auth_key_marks_the_instance_that_uses_it():
    d = diff(cfg(), cfg(BASE.replace("0123456789abcdef", "fedcba9876543210")))
    assert d.changed == ("lan",) and d.unchanged == ("wan", "dmz")


def test_changed_track_script_or_resource_marks_the_instance():
    assert diff(cfg(), cfg(BASE.replace('command = ["/bin/true"]', 'command = ["/bin/false"]'))).changed \
        == ("wan",)
    assert diff(cfg(), cfg(BASE.replace('stop = ["/bin/true"]', 'stop = ["/bin/false"]'))).changed \
        == ("wan",)


def test_joining_a_sync_group_marks_members_changed():
    d = diff(cfg(), cfg(BASE + '\n[sync_group.g]\ninstances = ["lan", "dmz"]\n'))
    assert d.changed == ("lan", "dmz") and d.unchanged == ("wan",)


def test_global_change_is_flagged_but_leaves_instances_alone():
    d = diff(cfg(), cfg(BASE.replace('node = "r1"', 'node = "r2"')))
    assert d.global_changed and d.unchanged == ("lan", "wan", "dmz") and not d.changed


def test_reordering_instances_changes_nothing():
    parts = BASE.split("[[instance]]")
    reordered = parts[0] + "[[instance]]" + parts[3] + "[[instance]]" + parts[1] + "[[instance]]" + parts[2]
    d = diff(cfg(), cfg(reordered))
    assert (d.added, d.removed, d.changed, d.global_changed) == ((), (), (), False)
    assert set(d.unchanged) == {"lan", "wan", "dmz"}
