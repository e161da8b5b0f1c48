"""The Debian packages `make deb` builds (appliance/debian/build-deb.sh): vmacd and vmacd-lab.

Both are built once into a temporary directory. The checks: control fields (dependencies,
Architecture, conffiles), the maintainer scripts (no sysctl, systemd only through
deb-systemd-helper / deb-systemd-invoke and daemon-reload), the contents (nothing vendored or
compiled, no bytecode, docs and man pages present), lintian (no error, no warning), and a real
install, upgrade and purge with dpkg.

How the install leaves the host clean, even when the test fails or is killed: dpkg runs in
tests/netns/deb_sandbox.py under `unshare --mount --net`, in a private mount namespace where
/usr, /etc and /var are overlays on the host's trees whose upper layers live on a tmpfs mounted
over /run in that namespace only. dpkg sees the host's database and the installed dependencies,
but every write lands in the tmpfs, which disappears with the namespace when the sandbox process
exits, whatever the reason; nothing has to be undone. The private network namespace gives the
package a set of sysctls of its own to be checked: /proc/sys/net shows that namespace's values.
Installing with dpkg --root/--instdir instead would need a complete system in the target
directory for the maintainer scripts (they run chrooted there), and a copy of the dpkg database
alone would still let the scripts write into the host.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SANDBOX = pathlib.Path(__file__).with_name("deb_sandbox.py")
PYLIB = "./usr/lib/python3/dist-packages"
VMACD_DEPENDS = {"python3 (>= 3.11)", "python3-netifaces", "nftables", "iproute2"}
SCRIPT_ALLOWED_SYSTEMCTL = "systemctl --system daemon-reload >/dev/null || true"
NS_SYSCTLS = ("arp_ignore", "arp_announce", "rp_filter", "arp_accept")
# what a dpkg run itself leaves: its database and log, and man-db's index (its trigger)
DPKG_OWN = ("/var/lib/dpkg/", "/var/log/dpkg.log", "/var/cache/man/")


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, pathlib.Path]:
    for tool in ("dpkg-deb", "lintian", "unshare"):
        assert shutil.which(tool), f"{tool} missing: `make deb` (or `make apt`) installs it"
    out = tmp_path_factory.mktemp("debs")
    p = sh("bash", str(ROOT / "appliance/debian/build-deb.sh"), str(out))
    assert p.returncode == 0, p.stderr
    paths = [pathlib.Path(line) for line in p.stdout.split()]
    by_name = {sh("dpkg-deb", "-f", str(d), "Package").stdout.strip(): d for d in paths}
    assert set(by_name) == {"vmacd", "vmacd-lab"}, p.stdout
    return by_name


def field(deb: pathlib.Path, name: str) -> str:
    return sh("dpkg-deb", "-f", str(deb), name).stdout.strip()


def relations(deb: pathlib.Path, name: str) -> set[str]:
    value = field(deb, name)
    return {part.strip() for part in value.split(",")} if value else set()


def contents(deb: pathlib.Path) -> list[str]:
    """Paths in the data archive, as dpkg-deb -c prints them (./usr/...)."""
    out = sh("dpkg-deb", "-c", str(deb)).stdout
    return [line.split()[5] for line in out.splitlines()]


def member(deb: pathlib.Path, path: str) -> str:
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    out = subprocess.run(["tar", "-xOf", "-", path], input=tar, capture_output=True, check=True).stdout
    return out.decode()


# ---------------------------------------------------------------- control fields


def test_control_fields(debs):
    d, lab = debs["vmacd"], debs["vmacd-lab"]
    assert field(d, "Architecture") == field(lab, "Architecture") == "all"
    assert relations(d, "Depends") == VMACD_DEPENDS
    assert relations(d, "Pre-Depends") == relations(d, "Recommends") == set()
    version = field(d, "Version")
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+", version)
    assert relations(lab, "Depends") == {f"vmacd (= {version})", "python3 (>= 3.11)", "python3-scapy",
                                         "procps"}
    assert {"python3-matplotlib", "keepalived", "frr", "tcpdump"} <= relations(lab, "Recommends")
    for deb in debs.values():
        maint = field(deb, "Maintainer")
        assert re.fullmatch(r"[^<>]+ <[^@\s]+@[^@\s]+\.[a-z]+>", maint) and "localhost" not in maint


def test_conffile_is_the_example_commented_out(debs):
    info = sh("dpkg-deb", "-I", str(debs["vmacd"]), "conffiles").stdout.split()
    assert info == ["/etc/vmacd/vmacd.toml"]
    conf = member(debs["vmacd"], "./etc/vmacd/vmacd.toml")
    assert tomllib.loads(conf) == {}, "nothing may be active in the installed config"
    example = (ROOT / "appliance/vmacd.toml").read_text()
    uncommented = [line[1:] for line in conf.splitlines() if re.match(r"#[^#\s]", line)]
    assert uncommented == [line for line in example.splitlines() if line and not line.startswith("#")]


# ---------------------------------------------------------------- maintainer scripts


def scripts(deb: pathlib.Path, tmp: pathlib.Path) -> dict[str, str]:
    ctl = tmp / deb.name
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctl)], check=True)
    names = ("preinst", "postinst", "prerm", "postrm")
    return {p.name: p.read_text() for p in ctl.iterdir() if p.name in names}


def test_maintainer_scripts_touch_no_sysctl_and_leave_systemd_to_its_helpers(debs, tmp_path):
    found = {}
    for name, deb in debs.items():
        for script, text in scripts(deb, tmp_path).items():
            found[f"{name}.{script}"] = text
            assert text.startswith("#!/bin/sh\n") and "set -e" in text
            assert sh("sh", "-n", "-c", text).returncode == 0, f"{name}.{script}: syntax"
            lines = [line.strip() for line in text.splitlines()]
            for line in (line for line in lines if line and not line.startswith("#")):
                assert not re.search(r"sysctl|/proc/sys", line), f"{name}.{script}: {line}"
                if re.search(r"(^|[\s;|&(])systemctl\b", line):
                    assert line == SCRIPT_ALLOWED_SYSTEMCTL, f"{name}.{script}: bare systemctl: {line}"
    assert set(found) == {"vmacd.postinst", "vmacd.prerm", "vmacd.postrm", "vmacd-lab.postinst",
                          "vmacd-lab.prerm"}
    assert "py3compile -p vmacd\n" in found["vmacd.postinst"]
    assert "py3clean -p vmacd\n" in found["vmacd.prerm"]
    assert "py3compile -p vmacd-lab" in found["vmacd-lab.postinst"]
    assert "py3clean -p vmacd-lab" in found["vmacd-lab.prerm"]
    assert "deb-systemd-helper enable 'vmacd.service'" in found["vmacd.postinst"]
    assert "deb-systemd-invoke stop 'vmacd.service'" in found["vmacd.prerm"]
    assert "deb-systemd-helper purge 'vmacd.service'" in found["vmacd.postrm"]


# ---------------------------------------------------------------- contents


def test_contents_nothing_vendored_compiled_or_cached(debs):
    files = contents(debs["vmacd"]) + contents(debs["vmacd-lab"])
    for path in files:
        assert not re.search(r"\.(whl|so|pyc|pyo|egg)$|__pycache__|\.(dist|egg)-info|/usr/lib/vmacd/",
                             path), path
        assert not path.startswith(("./etc/sysctl.d", "./usr/lib/sysctl.d", "./lib/sysctl.d")), path
        if path.startswith(PYLIB) and not path.endswith("/"):
            assert path.endswith(".py"), path
    own = {f"{PYLIB}/{p.relative_to(ROOT)}" for p in (ROOT / "vmacd").rglob("*.py")
           if "__pycache__" not in p.parts}
    assert own == {p for p in contents(debs["vmacd"]) if p.endswith(".py")}


def test_contents_daemon_and_lab_split(debs):
    d, lab = set(contents(debs["vmacd"])), set(contents(debs["vmacd-lab"]))
    for path in ("./usr/bin/vmacd", "./usr/bin/vmacctl", "./lib/systemd/system/vmacd.service",
                 "./etc/vmacd/vmacd.toml", "./var/lib/vmacd/", f"{PYLIB}/vmacd/cli/main.py",
                 "./usr/share/doc/vmacd/copyright", "./usr/share/doc/vmacd/changelog.Debian.gz",
                 "./usr/share/doc/vmacd/examples/vmacd.toml", "./usr/share/doc/vmacd/examples/notify.sh",
                 "./usr/share/doc/vmacd/examples/sysctl.d/90-vmacd.conf",
                 "./usr/share/vmacd/prometheus/vmacd.rules.yml", "./usr/share/vmacd/grafana/vmacd.json",
                 "./usr/share/man/man8/vmacd.8.gz", "./usr/share/man/man8/vmacctl.8.gz",
                 "./usr/share/man/man5/vmacd.toml.5.gz"):
        assert path in d, path
    for path in ("./usr/bin/vmac-lab", f"{PYLIB}/vmaclab/cli.py",
                 "./usr/share/vmacd-lab/topologies/pair.toml",
                 "./usr/share/vmacd-lab/scenarios/demo.toml", "./usr/share/man/man8/vmac-lab.8.gz",
                 "./usr/share/doc/vmacd-lab/copyright", "./usr/share/doc/vmacd-lab/changelog.Debian.gz"):
        assert path in lab, path
    assert not [p for p in d if "vmaclab" in p or "vmac-lab" in p]
    assert not [p for p in lab if p.startswith(f"{PYLIB}/vmacd/")]
    for deb, cmd in ((debs["vmacd"], "vmacd"), (debs["vmacd"], "vmacctl"), (debs["vmacd-lab"], "vmac-lab")):
        assert member(deb, f"./usr/bin/{cmd}").startswith("#!/usr/bin/python3 -I\n"), cmd
    unit = member(debs["vmacd"], "./lib/systemd/system/vmacd.service")
    assert "ExecStart=/usr/bin/vmacd run -c /etc/vmacd/vmacd.toml" in unit


# ---------------------------------------------------------------- lintian


def test_lintian_reports_no_error_and_no_warning(debs):
    p = sh("lintian", "--tag-display-limit", "0", *map(str, debs.values()), timeout=300)
    tags = [line for line in p.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert tags == [], p.stdout
    assert p.returncode == 0, p.stdout + p.stderr
    for name in debs:       # every override carries its reason on the comment lines above it
        lines = (ROOT / f"appliance/debian/{name}.lintian-overrides").read_text().splitlines()
        for i, line in enumerate(lines):
            if line and not line.startswith("#"):
                assert i > 0 and lines[i - 1].startswith("# "), f"{name}: override without a reason: {line}"


# ---------------------------------------------------------------- install, upgrade, purge


HOST_PATHS = ("/usr/lib/python3/dist-packages/vmacd", "/usr/lib/python3/dist-packages/vmaclab",
              "/etc/vmacd", "/var/lib/vmacd", "/usr/bin/vmacd", "/usr/bin/vmac-lab",
              "/etc/systemd/system/multi-user.target.wants/vmacd.service", "/run/sandbox")


def host_state() -> dict:
    """What the sandbox must not change on the host: the packages' dpkg status and their paths."""
    status = {name: sh("dpkg-query", "-W", "-f=${Status}", name).stdout for name in ("vmacd", "vmacd-lab")}
    return {"status": status, "paths": {p: os.path.lexists(p) for p in HOST_PATHS}}


@pytest.fixture(scope="module")
def sandbox(debs) -> dict:
    """The sandbox's report, plus the host's state before and after it ran."""
    assert os.geteuid() == 0
    before = host_state()
    p = sh("unshare", "--mount", "--net", "--propagation", "private", "--",
           sys.executable, str(SANDBOX), str(debs["vmacd"]), str(debs["vmacd-lab"]), timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    report["host"] = {"before": before, "after": host_state()}
    return report


def test_install_upgrade_purge_succeed_and_leave_nothing(sandbox):
    for step in ("install", "upgrade", "purge"):
        assert sandbox[step]["rc"] == 0, sandbox[step]
        assert "warning" not in sandbox[step]["stderr"].lower(), sandbox[step]["stderr"]
    got = sandbox["installed"]
    assert got["version"]["stdout"].startswith("vmacd ") and got["version"]["rc"] == 0, got["version"]
    assert got["ctl"]["rc"] == 2 and "cannot reach vmacd" in got["ctl"]["stderr"], got["ctl"]
    assert got["lab"]["stdout"].splitlines() == [
        "/usr/share/vmacd-lab/topologies", "/usr/share/vmacd-lab/scenarios", "['c1', 'r1', 'r2']",
    ], got["lab"]
    assert got["lab_help"]["rc"] == 0 and "usage: vmac-lab" in got["lab_help"]["stdout"], got["lab_help"]
    assert "vmacd/__pycache__" in got["bytecode"] and "vmaclab/__pycache__" in got["bytecode"]
    assert got["conffiles"].split()[0] == "/etc/vmacd/vmacd.toml"
    assert [p for p, there in sandbox["after_purge"].items() if there] == []
    assert sandbox["leftovers"]["deleted"] == []
    assert [p for p in sandbox["leftovers"]["made"] if not p.startswith(DPKG_OWN)] == []


def test_sysctls_untouched_by_install_upgrade_and_purge(sandbox):
    before = sandbox["sysctl_before"]
    for iface in ("all", "default", "lo"):
        for key in NS_SYSCTLS:
            assert f"ipv4/conf/{iface}/{key}" in before
    assert "ipv4/ip_nonlocal_bind" in before and "ipv6/ip_nonlocal_bind" in before
    for step in ("sysctl_installed", "sysctl_upgraded", "sysctl_after"):
        changed = {k: (v, sandbox[step].get(k)) for k, v in before.items() if sandbox[step].get(k) != v}
        assert changed == {}, f"{step}: {changed}"


def test_systemd_unit_enabled_but_started_only_with_a_valid_config(sandbox):
    # fresh install: the conffile defines no instance, so the unit is enabled but not started
    assert sandbox["installed"]["check"]["rc"] == 1
    assert "at least one [[instance]] is required" in sandbox["installed"]["check"]["stderr"]
    assert sandbox["installed"]["wants_link"] == "/lib/systemd/system/vmacd.service"
    assert not [c for c in sandbox["install_systemctl"] if re.search(r"\b(start|restart)\b", c)]
    assert "vmacd.service was not started" in sandbox["install"]["stderr"]
    # upgrade with a valid config: a running daemon is restarted, a stopped one left stopped
    assert "try-restart vmacd.service" in sandbox["upgrade_systemctl"]
    assert not [c for c in sandbox["upgrade_systemctl"] if re.search(r"(^|\s)(start|restart)\s", c)]
    # removal stops it (a graceful stop: the master hands over first)
    assert "stop vmacd.service" in sandbox["purge_systemctl"]


def test_sandbox_left_the_host_as_it_was(sandbox):
    assert sandbox["host"]["after"] == sandbox["host"]["before"]
