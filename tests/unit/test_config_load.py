"""Config loading (docs/config.md): typed model, every error collected, RFC 9568 config rules
(the tables an instance refers to, auth and commands: test_config_tables.py)."""
from __future__ import annotations

import ipaddress
import pathlib

import pytest

from vmacd.config import model
from vmacd.config.load import ConfigError, load, load_text

APPLIANCE = pathlib.Path(__file__).resolve().parents[2] / "appliance" / "vmacd.toml"


def toml(instance: str = "", extra: str = "", glob: str = 'node = "r1"') -> str:
    """A minimal valid config; `instance` lines are added to (or override) the [[instance]] table."""
    base = {"name": '"lan"', "interface": '"eth1"', "vrid": "51", "virtual_ips": '["192.0.2.254/24"]'}
    lines = []
    for line in instance.strip().splitlines():
        key = line.split("=", 1)[0].strip()
        if key.startswith("-"):          # "-vrid" removes the key
            base.pop(key[1:], None)
            continue
        base[key] = line.split("=", 1)[1].strip()
    lines = [f"{k} = {v}" for k, v in base.items()]
    return f"[global]\n{glob}\n\n[[instance]]\n" + "\n".join(lines) + "\n\n" + extra


def errors(text: str, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "vmacd.toml", **kw)
    return [str(e) for e in info.value.errors]


def one(text: str) -> model.Instance:
    return load_text(text, "vmacd.toml").instances[0]


# ---- the appliance example and the defaults ----------------------------------------------------

def test_appliance_example_loads_with_every_section():
    cfg = load(str(APPLIANCE), read_files=False)
    web = cfg.instance("web")
    assert web.advert_interval_cs == 20 and web.advert_interval == 0.2
    assert web.accept is True                        # the web server behind the VIP is reachable
    assert web.auth is not None and web.auth.type == "hmac-sha256" and web.auth.key is None
    assert web.track_scripts[0].script.command[0] == "/usr/bin/ping"
    httpd = web.resources[0]
    assert httpd.name == "apache2" and httpd.monitor and httpd.monitor_fall == 2
    assert web.sync_group.instances == ("web", "backend")
    assert cfg.global_.metrics_listen == "127.0.0.1:9650" and cfg.global_.notify is None


def test_defaults_of_an_instance():
    inst = one(toml())
    assert (inst.version, inst.vmac, inst.vmac_mode, inst.garp_repeat) == (3, True, "bridge", 3)
    assert inst.graceful_handover == "make-before-break"
    assert inst.v3_checksum_pseudoheader is True and inst.v3_checksum_strict is False
    assert inst.virtual_ips == (ipaddress.ip_interface("192.0.2.254/24"),)
    assert inst.family == 4 and inst.key == ("eth1", 51, 4)


def test_global_defaults_node_is_hostname_and_metrics_can_be_disabled():
    import socket
    cfg = load_text(toml(glob='metrics_listen = ""'), "x.toml")
    assert cfg.global_.node == socket.gethostname()
    assert cfg.global_.metrics_enabled is False
    assert cfg.global_.control_socket == "/run/vmacd/vmacd.sock"


def test_realtime_priority_defaults_to_5_and_is_checked():
    assert load_text(toml(), "x.toml").global_.realtime_priority == 5
    assert load_text(toml(glob='node = "r1"\nrealtime_priority = 0'), "x").global_.realtime_priority == 0
    assert errors(toml(glob='node = "r1"\nrealtime_priority = 100')) == [
        "vmacd.toml: global.realtime_priority: must be 0..99, got 100"]


def test_model_is_frozen_and_equal_for_equal_text():
    a, b = load_text(toml(), "a"), load_text(toml(), "a")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.instances[0].priority = 1  # type: ignore[misc]


# ---- error collection and rendering ------------------------------------------------------------

def test_spec_wording_for_a_bad_vrid():
    assert errors(toml("vrid = 300")) == ["vmacd.toml: instance[lan].vrid: must be 1..255, got 300"]


def test_every_error_is_collected_not_just_the_first():
    text = toml('vrid = 300\npriority = 0\nadvert_interval = "fast"\nvmac_mode = "privat"',
                glob='node = "r1"\nlog_level = "loud"')
    errs = errors(text)
    assert len(errs) == 5
    joined = "\n".join(errs)
    for fragment in ("global.log_level", "instance[lan].vrid", "instance[lan].priority",
                     "instance[lan].advert_interval", "instance[lan].vmac_mode"):
        assert fragment in joined
    assert 'got "privat" (did you mean \'private\'?)' in joined
    assert "0 is reserved for a master that is leaving" in joined


def test_unknown_keys_are_errors_with_a_hint():
    errs = errors(toml("priorty = 150", extra="[track_script.a]\ncommand = ['x']\nintervall = '1s'\n"))
    assert "vmacd.toml: instance[lan].priorty: unknown key (did you mean 'priority'?)" in errs
    assert "vmacd.toml: track_script.a.intervall: unknown key (did you mean 'interval'?)" in errs


def test_unknown_top_level_table():
    assert errors(toml(extra="[instances]\n")) == [
        "vmacd.toml: instances: unknown key (did you mean 'instance'?)"]


def test_invalid_toml_names_line_and_column():
    errs = errors("[global]\nnode = \n")
    assert len(errs) == 1 and errs[0].startswith("vmacd.toml: line 2, column 8: invalid TOML:")


def test_instance_without_name_is_named_by_index():
    errs = errors(toml("-name"))
    assert errs == ["vmacd.toml: instance[0].name: is required"]


def test_types_are_checked_bool_is_not_an_int():
    errs = errors(toml("vrid = true\npreempt = 1\ngarp_repeat = \"3\""))
    assert "vmacd.toml: instance[lan].vrid: must be an integer 1..255, got true" in errs
    assert "vmacd.toml: instance[lan].preempt: must be true or false, got 1" in errs
    assert 'vmacd.toml: instance[lan].garp_repeat: must be an integer 1..100, got "3"' in errs


def test_single_instance_table_instead_of_array():
    errs = errors('[instance]\nname = "lan"\n')
    assert errs == ["vmacd.toml: instance: must be an array of tables: write [[instance]], not [instance]"]


def test_no_instance_at_all():
    assert errors("[global]\n") == ["vmacd.toml: instance: at least one [[instance]] is required"]


# ---- RFC 9568 rules at load --------------------------------------------------------------------

@pytest.mark.rfc("9568-6.1-1", "holds")
@pytest.mark.parametrize("vrid", [1, 255])
def test_vrid_bounds_load(vrid):
    assert one(toml(f"vrid = {vrid}")).vrid == vrid


@pytest.mark.rfc("9568-6.1-1", "refused")
@pytest.mark.parametrize("line,msg", [("vrid = 0", "must be 1..255, got 0"),
                                      ("vrid = 256", "must be 1..255, got 256"),
                                      ("-vrid", "is required (1..255; RFC 9568 §6.1 gives VRID no default)")])
def test_vrid_out_of_range_or_missing_is_refused(line, msg):
    assert errors(toml(line)) == [f"vmacd.toml: instance[lan].vrid: {msg}"]


@pytest.mark.rfc("9568-6.1-2", "holds")
def test_priority_defaults_to_100():
    assert one(toml()).priority == 100


@pytest.mark.rfc("9568-6.1-2", "refused")
def test_explicit_priority_is_not_overridden_by_the_default():
    assert one(toml("priority = 150")).priority == 150


@pytest.mark.rfc("9568-5.2.4-2", "holds")
@pytest.mark.parametrize("prio", [1, 100, 254])
def test_non_owner_priorities_load(prio):
    inst = one(toml(f"priority = {prio}"))
    assert inst.priority == prio and not inst.owner


@pytest.mark.rfc("9568-5.2.4-2", "refused")
@pytest.mark.parametrize("prio", [0, 256, -1])
def test_priority_outside_1_255_refused(prio):
    [err] = errors(toml(f"priority = {prio}"))
    assert err.startswith(f"vmacd.toml: instance[lan].priority: must be 1..255, got {prio}")


@pytest.mark.rfc("9568-6.1-4", "holds")
@pytest.mark.rfc("9568-5.2.7-1", "holds")
@pytest.mark.parametrize("text,cs", [("10ms", 1), ("40.95s", 4095), ("1.5s", 150), ("1s", 100)])
def test_v3_interval_in_centiseconds(text, cs):
    assert one(toml(f'advert_interval = "{text}"')).advert_interval_cs == cs


@pytest.mark.rfc("9568-6.1-4", "holds")
def test_interval_defaults_to_100_centiseconds():
    inst = one(toml())
    assert inst.advert_interval_cs == 100 and inst.advert_interval == 1.0


@pytest.mark.rfc("9568-6.1-4", "refused")
@pytest.mark.rfc("9568-5.2.7-1", "refused")
@pytest.mark.parametrize("text", ["0s", "5ms", "40.96s", "15ms", "1m"])
def test_v3_interval_outside_1_4095_cs_or_not_whole_refused(text):
    [err] = errors(toml(f'advert_interval = "{text}"'))
    assert err.startswith("vmacd.toml: instance[lan].advert_interval: ")
    assert f'got "{text}"' in err


def test_v2_interval_is_whole_seconds():
    assert one(toml('version = 2\nadvert_interval = "3s"')).advert_interval_cs == 300
    [err] = errors(toml('version = 2\nadvert_interval = "100ms"'))
    assert "VRRPv2 carries whole seconds: must be 1s..255s" in err


@pytest.mark.rfc("9568-5.2.5-1", "refused")
def test_instance_without_virtual_ip_refused():
    [err] = errors(toml("virtual_ips = []"))
    assert err.startswith("vmacd.toml: instance[lan].virtual_ips: must list at least one address")


@pytest.mark.rfc("9568-5.2.5-1", "holds")
def test_three_vips_give_three_addresses():
    inst = one(toml('virtual_ips = ["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3"]'))
    assert [str(v) for v in inst.virtual_ips] == ["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/32"]


@pytest.mark.rfc("9568-5.2.9-1", "holds")
@pytest.mark.rfc("9568-6.1-3", "holds")
def test_ipv6_link_local_first_loads_in_order():
    inst = one(toml('virtual_ips = ["fe80::1/64", "2001:db8::1/64"]'))
    assert [str(v.ip) for v in inst.virtual_ips] == ["fe80::1", "2001:db8::1"] and inst.family == 6


@pytest.mark.rfc("9568-5.2.9-1", "refused")
@pytest.mark.rfc("9568-6.1-3", "refused")
def test_ipv6_global_first_refused_with_reason():
    [err] = errors(toml('virtual_ips = ["2001:db8::1/64", "fe80::1/64"]'))
    assert err.startswith("vmacd.toml: instance[lan].virtual_ips[0]: the first IPv6 address must be")
    assert "link-local" in err and 'got "2001:db8::1/64"' in err


# 9568-5.2.9-1 / 6.1-3: `ipv6_link_local_first = false` is a deliberate, opt-in departure; this
# test checks the departed behaviour (a global-only list loads and is kept in order)
def test_ipv6_link_local_first_false_allows_keepalived_style_list():
    inst = one(toml('virtual_ips = ["2001:db8::fe/64", "2001:db8::fd"]\nipv6_link_local_first = false'))
    assert [str(v.ip) for v in inst.virtual_ips] == ["2001:db8::fe", "2001:db8::fd"]
    assert inst.ipv6_link_local_first is False and inst.ipv6_link_local_first_strict is False
    ll = one(toml('virtual_ips = ["fe80::1/64", "2001:db8::fe/64"]\nipv6_link_local_first = false'))
    assert ll.virtual_ips[0].ip.is_link_local                     # a link-local first stays allowed


def test_ipv6_link_local_behind_a_global_address_is_refused_even_when_allowed():
    [err] = errors(toml('virtual_ips = ["2001:db8::fe/64", "fe80::1/64"]\nipv6_link_local_first = false'))
    assert err == ('vmacd.toml: instance[lan].virtual_ips[1]: a link-local address goes first in an '
                   'IPv6 list (RFC 9568 §5.2.9), got "fe80::1/64" after "2001:db8::fe/64"')


def test_ipv6_link_local_keys_defaults_and_rules():
    v6 = one(toml('virtual_ips = ["fe80::1/64", "2001:db8::fe/64"]'))
    assert v6.ipv6_link_local_first is True and v6.ipv6_link_local_first_strict is False
    strict = one(toml('virtual_ips = ["fe80::1/64"]\nipv6_link_local_first_strict = true'))
    assert strict.ipv6_link_local_first_strict is True
    [err] = errors(toml('virtual_ips = ["2001:db8::fe"]\nipv6_link_local_first = false\n'
                        'ipv6_link_local_first_strict = true'))
    assert err.startswith("vmacd.toml: instance[lan].ipv6_link_local_first_strict: would drop adverts "
                          "like this instance's own")
    errs = errors(toml("ipv6_link_local_first = false\nipv6_link_local_first_strict = false"))
    assert errs == [f"vmacd.toml: instance[lan].{k}: applies to IPv6 instances only (an IPv4 list "
                    "has no link-local address; RFC 9568 §5.2.9)"
                    for k in ("ipv6_link_local_first", "ipv6_link_local_first_strict")]
    [err] = errors(toml('virtual_ips = ["fe80::1"]\nipv6_link_local_first_strict = "yes"'))
    assert err.startswith("vmacd.toml: instance[lan].ipv6_link_local_first_strict: must be")
    assert '"yes"' in err


def test_global_first_error_names_the_switch():
    [err] = errors(toml('virtual_ips = ["2001:db8::fe/64"]'))
    assert "ipv6_link_local_first = false" in err


@pytest.mark.rfc("9568-5.2.9-2", "refused")
def test_mixed_families_refused():
    [err] = errors(toml('virtual_ips = ["192.0.2.1", "fe80::1"]'))
    assert err.startswith("vmacd.toml: instance[lan].virtual_ips[1]: all addresses of an instance "
                          "must be IPv4")


@pytest.mark.rfc("9568-5.2.9-2", "holds")
def test_one_family_per_instance_loads():
    assert {v.version for v in one(toml('virtual_ips = ["192.0.2.1", "192.0.2.9"]')).virtual_ips} == {4}


def test_ipv6_with_version_2_refused():
    [err] = errors(toml('version = 2\nvirtual_ips = ["fe80::1"]'))
    assert "VRRPv2 is IPv4 only" in err


@pytest.mark.rfc("9568-6.1-8", "holds")
def test_preempt_defaults_to_true():
    assert one(toml()).preempt is True


@pytest.mark.rfc("9568-6.1-8", "refused")
def test_explicit_preempt_false_is_kept():
    assert one(toml("preempt = false")).preempt is False


def test_accept_defaults_to_true():
    """A documented departure from RFC 9568 §6.1 (Accept_Mode defaults to False): a service
    behind a cluster IP needs the master to take traffic for it, as keepalived and FRR do."""
    assert one(toml()).accept is True


@pytest.mark.rfc("9568-6.1-9", "holds")
def test_accept_false_gives_the_rfc_default_back():
    assert one(toml("accept = false")).accept is False


def test_owner_priority_255_loads_and_is_owner():
    assert one(toml("priority = 255")).owner


# ---- addresses, peers, duplicates --------------------------------------------------------------

def test_bad_and_duplicate_addresses():
    errs = errors(toml('virtual_ips = ["192.0.2.300", "224.0.0.18", "192.0.2.1", "192.0.2.1/24"]\n'
                       'unicast_peers = ["2001:db8::2", "192.0.2.7", "192.0.2.7"]'))
    assert errs == [
        ('vmacd.toml: instance[lan].virtual_ips[0]: must be an IP address with an optional '
         '/prefix, got "192.0.2.300"'),
        'vmacd.toml: instance[lan].virtual_ips[1]: must be a unicast address, got "224.0.0.18"',
        'vmacd.toml: instance[lan].virtual_ips[3]: duplicate address, got "192.0.2.1/24"',
        'vmacd.toml: instance[lan].unicast_peers[0]: must be IPv4 like the virtual_ips, got "2001:db8::2"',
        'vmacd.toml: instance[lan].unicast_peers[2]: duplicate peer, got "192.0.2.7"',
    ]


def test_unicast_peers_parsed():
    inst = one(toml('unicast_peers = ["192.0.2.2", "192.0.2.3"]'))
    assert inst.unicast_peers == tuple(ipaddress.ip_address(a) for a in ("192.0.2.2", "192.0.2.3"))


SECOND = '[[instance]]\nname = "{name}"\ninterface = "{ifc}"\nvrid = {vrid}\nvirtual_ips = ["{vip}"]\n'


def test_duplicate_name_vrid_and_vip_refused():
    text = toml() + SECOND.format(name="lan", ifc="eth2", vrid=1, vip="192.0.2.8") \
        + SECOND.format(name="wan", ifc="eth1", vrid=51, vip="192.0.2.254")
    assert errors(text) == [
        'vmacd.toml: instance[lan].name: duplicate name, got "lan"',
        "vmacd.toml: instance[wan].vrid: eth1 already has VRID 51 for IPv4 (instance[lan]), got 51",
        "vmacd.toml: instance[wan].virtual_ips: 192.0.2.254 is already a VIP of instance[lan]",
    ]


def test_same_vrid_other_family_or_interface_is_fine():
    text = toml() + SECOND.format(name="lan6", ifc="eth1", vrid=51, vip="fe80::1") \
        + SECOND.format(name="wan", ifc="eth2", vrid=51, vip="198.51.100.1")
    assert load_text(text, "x").instance_names == ("lan", "lan6", "wan")


def test_non_utf8_file(tmp_path):
    cfg = tmp_path / "vmacd.toml"
    cfg.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(str(cfg))


def test_a_duplicate_name_does_not_hide_the_duplicate_vrid():
    text = """
[[instance]]
name = "lan"
interface = "eth1"
vrid = 51
virtual_ips = ["192.0.2.254/24"]
[[instance]]
name = "lan"
interface = "eth1"
vrid = 51
virtual_ips = ["192.0.2.253/24"]
"""
    with pytest.raises(ConfigError) as err:
        load_text(text, "v.toml", read_files=False)
    got = [str(i) for i in err.value.errors]
    assert any("instance[lan].name: duplicate name" in g for g in got), got
    assert any("instance[lan].vrid: eth1 already has VRID 51" in g for g in got), got


# ---- found by the fuzzer (tests/fuzz): every issue names a key path, never a traceback ----------

def test_invalid_toml_at_the_end_of_the_document_says_so():
    errs = errors("[global]\nnode = \"r1\"\n[glob")
    assert len(errs) == 1 and errs[0].startswith("vmacd.toml: end of document: invalid TOML:")


@pytest.mark.parametrize("value", ["5", '"lan"', "true", "1.5"])
def test_instance_that_is_not_a_table_is_an_error(value):
    assert errors(f"instance = {value}\n") == [
        "vmacd.toml: instance: must be an array of tables [[instance]]"]


@pytest.mark.parametrize("top,extra,path", [
    ('"" = 1\n', "", '""'),
    ('"a b" = 1\n', "", '"a b"'),
    ('"x\\ny" = 1\n', "", '"x\\ny"'),
    ("", '[track_script.a]\ncommand = ["/bin/true"]\n"a.b" = 1\n', 'track_script.a."a.b"'),
    ("", '[track_script.""]\ncommand = ["/bin/true"]\n', 'track_script.""'),
    ("", '"\u00e9" = 1\n', 'instance[lan]."\u00e9"'),
])
def test_keys_that_are_not_bare_are_quoted_in_the_path(top, extra, path):
    errs = errors(top + toml(extra=extra))
    assert [e for e in errs if e.startswith(f"vmacd.toml: {path}: ")], errs
    assert all("\n" not in e for e in errs)


def test_reference_to_an_odd_name_is_quoted():
    errs = errors(toml('auth = "a\\nb"'))
    assert errs == ['vmacd.toml: instance[lan].auth: no [auth."a\\nb"] table, got "a\\nb"']


@pytest.mark.parametrize("extra,path", [
    ('[auth.k]\ntype = "hmac-sha256"\nkey_file = "k\\u0000ey"\n', "auth.k.key_file"),
    ('[track_script.a]\ncommand = ["/bin/true", "x\\u0000"]\n', "track_script.a.command"),
    ('[resource.r]\nstart = ["/bin/true"]\nstop = ["/bin/t\\u0000rue"]\n', "resource.r.stop"),
])
def test_nul_characters_are_refused(extra, path):
    errs = errors(toml(extra=extra), read_files=True)
    assert [e for e in errs if e.startswith(f"vmacd.toml: {path}: must not contain a NUL")], errs


def test_nul_in_a_path_of_an_instance_is_refused():
    errs = errors(toml('notify = "/usr/bin/x\\u0000"'))
    assert errs == [('vmacd.toml: instance[lan].notify: must not contain a NUL character (\\u0000), '
                     'got "/usr/bin/x\\u0000"')]


def test_a_virtual_ip_with_a_zone_is_refused():
    errs = errors(toml('virtual_ips = ["fe80::5", "fe80::1%eth1"]'))
    assert errs == [('vmacd.toml: instance[lan].virtual_ips[1]: must not have a %zone (the instance\'s '
                     'interface is the zone), got "fe80::1%eth1"')]


def test_more_digits_than_decimal_keeps_are_still_exact():
    errs = errors(toml('preempt_delay = "1.00000000000000000000000000001s"'))
    assert errs == [('vmacd.toml: instance[lan].preempt_delay: must be a whole number of microseconds, '
                     'got "1.00000000000000000000000000001s"')]
