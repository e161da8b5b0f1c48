"""Config loading (docs/config.md), the tables an instance refers to: track scripts, resources,
sync groups and auth (keys inline or in key files, and their modes), and the commands they run."""
from __future__ import annotations

import os

import pytest
from test_config_load import errors, one, toml

from vmacd.config import model
from vmacd.config.load import ConfigError, load

# ---- references, tracking, sync groups ---------------------------------------------------------

REFS = """
[track_script.httpd]
command = ["/bin/true"]
interval = "2s"
timeout = "500ms"
rise = 2
fall = 3

[resource.web]
start = ["/bin/true", "start"]
stop = ["/bin/true", "stop"]

[sync_group.g]
instances = ["lan"]
"""


def test_references_resolve_to_objects():
    inst = one(toml('track_scripts = [{ name = "httpd", weight = -20 }]\nresources = ["web"]\n'
                    'track_interfaces = [{ name = "eth0" }]\n'
                    'track_files = [{ path = "/run/w" }]', REFS))
    [ts] = inst.track_scripts
    assert (ts.name, ts.weight, ts.script.interval, ts.script.timeout, ts.script.fall) == \
        ("httpd", -20, 2.0, 0.5, 3)
    assert inst.resources[0].timeout == 30.0 and inst.resources[0].stop == ("/bin/true", "stop")
    assert inst.track_interfaces == (model.TrackedInterface("eth0", 0),)
    assert inst.track_files == (model.TrackedFile("/run/w", 1),)
    assert inst.sync_group == model.SyncGroup("g", ("lan",))


def test_dangling_references_refused_with_hints():
    errs = errors(toml('auth = "lann"\ntrack_scripts = [{ name = "http" }]\nresources = ["webb"]',
                       REFS + '\n[sync_group.h]\ninstances = ["lam"]\n[auth.lan]\ntype = "none"\n'))
    assert errs == [
        "vmacd.toml: sync_group.h.instances[0]: no [[instance]] named \"lam\" (did you mean 'lan'?)",
        "vmacd.toml: instance[lan].auth: no [auth.lann] table, got \"lann\" (did you mean 'lan'?)",
        ("vmacd.toml: instance[lan].track_scripts[0].name: no [track_script.http] table, "
         "got \"http\" (did you mean 'httpd'?)"),
        ("vmacd.toml: instance[lan].resources[0]: no [resource.webb] table, got \"webb\" "
         "(did you mean 'web'?)"),
    ]


def test_instance_in_two_sync_groups_refused():
    errs = errors(toml(extra='[sync_group.a]\ninstances = ["lan"]\n[sync_group.b]\ninstances = ["lan"]\n'))
    assert errs == ['vmacd.toml: sync_group.b.instances[0]: instance "lan" is already in sync_group a']


def test_weights_are_bounded():
    errs = errors(toml('track_interfaces = [{ name = "eth0", weight = -255 }, "eth2"]'))
    assert errs == [
        "vmacd.toml: instance[lan].track_interfaces[0].weight: must be an integer -254..254, got -255",
        ('vmacd.toml: instance[lan].track_interfaces[1]: must be a table like { name = "eth0", '
         'weight = -50 }, got "eth2"'),
    ]


def test_track_script_needs_a_command_list():
    errs = errors(toml(extra='[track_script.x]\ncommand = "curl localhost"\ntimeout = "0s"\n'))
    assert errs == [
        'vmacd.toml: track_script.x.command: must be a list of strings, got "curl localhost"',
        'vmacd.toml: track_script.x.timeout: must be longer than 0s, got "0s"',
    ]


def test_warn_after_must_exceed_interval():
    assert one(toml('advert_interval = "100ms"\nwarn_after = "250ms"')).warn_after == 0.25
    [err] = errors(toml('advert_interval = "1s"\nwarn_after = "500ms"'))
    assert err == ('vmacd.toml: instance[lan].warn_after: must be longer than advert_interval (1000ms) '
                   'or "0s" to disable, got "500ms"')


def test_checksum_keys_are_v3_only():
    [err] = errors(toml('version = 2\nv3_checksum_strict = true'))
    assert err == "vmacd.toml: instance[lan].v3_checksum_strict: applies to version 3 only; " \
                  "VRRPv2 has one checksum form"


# ---- auth --------------------------------------------------------------------------------------

def auth_cfg(body: str, instance: str = 'auth = "a"') -> str:
    return toml(instance, f"[auth.a]\n{body}\n")


@pytest.mark.parametrize("kind,version", [("pass", 2), ("ah", 2), ("hmac-sha256", 3), ("hmac-sha256", 2)])
def test_auth_types_load_with_inline_key(kind, version):
    key = "x" * (16 if kind == "hmac-sha256" else 8)
    inst = one(auth_cfg(f'type = "{kind}"\nkey = "{key}"', f'auth = "a"\nversion = {version}'))
    assert inst.auth == model.Auth("a", kind, key.encode())


@pytest.mark.parametrize("kind", ["pass", "ah"])
def test_v2_only_auth_refused_on_v3(kind):
    [err] = errors(auth_cfg(f'type = "{kind}"\nkey = "secret"'))
    assert err.startswith(f"vmacd.toml: instance[lan].auth: [auth.a] has type {kind}, which only VRRPv2")


@pytest.mark.parametrize("body,msg", [
    ('type = "pass"\nkey = "123456789"', "key: a pass key must be 1..8 bytes"),
    ('type = "hmac-sha256"\nkey = "short"', "key: a hmac-sha256 key must be 16..64 bytes"),
    ('type = "hmac-sha256"', "type: type hmac-sha256 needs exactly one of key or key_file"),
    ('type = "hmac-sha256"\nkey = "x"\nkey_file = "/k"', "key: type hmac-sha256 needs exactly one"),
    ('type = "none"\nkey = "x"', "key: type none takes no key"),
    ('type = "md5"', "type: must be one of none | pass | ah | hmac-sha256"),
])
def test_auth_key_rules(body, msg):
    [err] = errors(auth_cfg(body, 'auth = "a"\nversion = 2'))
    assert err.startswith(f"vmacd.toml: auth.a.{msg}"), err


def _key_file_config(tmp_path, content: bytes, mode: int):
    """(key file, config naming it relative to itself) in tmp_path."""
    key = tmp_path / "lan.key"
    key.write_bytes(content)
    key.chmod(mode)
    cfg = tmp_path / "vmacd.toml"
    cfg.write_text(auth_cfg('type = "hmac-sha256"\nkey_file = "lan.key"'))
    return key, cfg


def test_key_file_read_relative_to_config_and_stripped(tmp_path):
    key, cfg = _key_file_config(tmp_path, b"0123456789abcdef0123\n", 0o600)
    auth = load(str(cfg)).instances[0].auth
    assert auth.key == b"0123456789abcdef0123" and auth.key_file == str(key)


def test_world_readable_key_file_refused(tmp_path):
    key, cfg = _key_file_config(tmp_path, b"0123456789abcdef0123", 0o644)
    with pytest.raises(ConfigError) as info:
        load(str(cfg))
    assert str(info.value) == (f'{cfg}: auth.a.key_file: "{key}" is world-readable or -writable '
                               "(mode 0644); chmod 600 it")
    # not reading files (check on another box) skips the key file entirely
    assert load(str(cfg), read_files=False).instances[0].auth.key is None


def test_missing_key_file_refused(tmp_path):
    cfg = tmp_path / "vmacd.toml"
    cfg.write_text(auth_cfg('type = "hmac-sha256"\nkey_file = "/nonexistent/k"'))
    with pytest.raises(ConfigError, match=r'auth\.a\.key_file: cannot read "/nonexistent/k"'):
        load(str(cfg))


def test_inline_key_in_world_readable_config_refused(tmp_path):
    cfg = tmp_path / "vmacd.toml"
    cfg.write_text(auth_cfg('type = "hmac-sha256"\nkey = "0123456789abcdef"'))
    os.chmod(cfg, 0o644)
    with pytest.raises(ConfigError, match=r"auth.a.key: inline key in a world-readable file \(mode 0644\)"):
        load(str(cfg))
    os.chmod(cfg, 0o600)
    assert load(str(cfg)).instances[0].auth.key == b"0123456789abcdef"


# ---- key files and commands -------------------------------------------------------------------

def test_file_problems_can_be_collected_without_stopping_the_load(tmp_path):
    """`vmacd check` asks for key-file and mode problems apart, so they hide nothing else."""
    key = tmp_path / "lan.key"
    key.write_bytes(b"0123456789abcdef0123")
    key.chmod(0o644)
    cfg = tmp_path / "vmacd.toml"
    cfg.write_text(auth_cfg('type = "hmac-sha256"\nkey_file = "lan.key"') +
                   '[auth.b]\ntype = "hmac-sha256"\nkey_file = "/nonexistent/k"\n'
                   '[auth.c]\ntype = "hmac-sha256"\nkey = "0123456789abcdef"\n')
    os.chmod(cfg, 0o644)
    found: list = []
    config = load(str(cfg), file_issues=found)
    assert [str(i) for i in found] == [
        f'{cfg}: auth.a.key_file: "{key}" is world-readable or -writable (mode 0644); chmod 600 it',
        f'{cfg}: auth.b.key_file: cannot read "/nonexistent/k": No such file or directory',
        (f"{cfg}: auth.c.key: inline key in a world-readable file (mode 0644); chmod o-r the "
         "config (chmod 600) or use key_file"),
    ]
    assert {a.name: a.key for a in config.auth} == {"a": b"0123456789abcdef0123", "b": None,
                                                    "c": b"0123456789abcdef"}


@pytest.mark.parametrize("table, key", [
    ('[track_script.x]\ncommand = ["</dev/tcp/127.0.0.1/80"]\n', "track_script.x.command"),
    ('[track_script.x]\ncommand = ["/usr/bin/curl -fsS http://127.0.0.1/"]\n', "track_script.x.command"),
    ('[resource.r]\nstart = ["/bin/true"]\nstop = ["pkill x && true"]\n', "resource.r.stop"),
    ('[resource.r]\nstart = ["/bin/true"]\nstop = ["/bin/true"]\nmonitor = ["$HOME/check"]\n',
     "resource.r.monitor"),
])
def test_a_shell_line_where_a_program_belongs_is_refused(table, key):
    [err] = errors(toml(extra=table))
    assert err.startswith(f"vmacd.toml: {key}: the first word must be a program (argv, no shell): "
                          'split the command into its words, or run a shell line as ["/bin/sh", "-c", '
                          '"..."], got ')


def test_notify_argv_keys_need_a_program_not_a_shell_line():
    assert errors(toml('notify_master = ["/bin/echo >/tmp/x"]\nnotify_fault = ["logger", "x"]')) == [
        ('vmacd.toml: instance[lan].notify_master: the first word must be a program (argv, no '
         'shell): split the command into its words, or run a shell line as ["/bin/sh", "-c", '
         '"..."], got "/bin/echo >/tmp/x"'),
        'vmacd.toml: instance[lan].notify_fault: the program must be an absolute path, got "logger"',
    ]
    inst = one(toml('notify_stop = ["/bin/sh", "-c", "logger x >/dev/null"]'))
    assert inst.notify_stop == ("/bin/sh", "-c", "logger x >/dev/null")
