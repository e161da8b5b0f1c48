"""Install, upgrade and purge Debian packages in a throwaway copy of this system; print a JSON report.

Run as root through ``unshare --mount --net --propagation private -- python deb_sandbox.py DEB...``
(tests/netns/test_deb.py does). Everything happens in the private mount and network namespaces
that unshare made, so the host is left as it was however this script ends:

- /run is a fresh tmpfs (no /run/systemd of the host, no socket to its PID 1); it holds the
  overlays' upper layers, so nothing is written to the host's disks;
- /usr, /etc and /var are overlays on the host's trees: dpkg sees the host's dpkg database and
  installed packages (the packages' dependencies must be installed on the host), and every change
  lands in the upper layer, which vanishes with the namespace;
- the network namespace is new, so the sysctls read under /proc/sys/net are this namespace's own.

systemd is simulated: /run/systemd/system exists and a `systemctl` first in PATH logs its
arguments, hands the offline unit-file work (`--root=/ preset` etc., which deb-systemd-helper uses
to enable a unit) to the real systemctl, answers is-enabled from the enablement symlink and
is-active with "inactive", and does nothing else; the host's policy-rc.d (a container's "never
start services") is hidden. So the maintainer scripts take their systemd branches as on a booted
Debian host, and the report shows what they asked systemd to do.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

RUN = pathlib.Path("/run/sandbox")
TREES = ("usr", "etc", "var")
SYSCTL_KEYS = ("arp_ignore", "arp_announce", "rp_filter", "arp_accept", "accept_local")
GLOBAL_SYSCTLS = ("ipv4/ip_nonlocal_bind", "ipv6/ip_nonlocal_bind", "ipv4/ip_forward")
WANTS = "/etc/systemd/system/multi-user.target.wants/vmacd.service"
FAKE_SYSTEMCTL = f"""#!/bin/sh
echo "$*" >> {RUN}/systemctl.log
case " $* " in
  *" --root="*) exec /usr/bin/systemctl "$@" ;;
  *" is-enabled "*) if [ -e {WANTS} ]; then echo enabled; else echo disabled; exit 1; fi ;;
  *" is-active "*) exit 3 ;;
esac
exit 0
"""
VALID_CONFIG = """[[instance]]
name = "lan"
interface = "eth0"
vrid = 51
virtual_ips = ["192.0.2.254/24"]
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def setup(debs: list[str]) -> list[str]:
    """Private /run, overlays on /usr, /etc, /var, a private /tmp, the fake systemctl."""
    sh("mount", "-t", "tmpfs", "-o", "mode=0755", "sandbox", "/run")
    for sub in ("upper", "work", "debs", "bin"):
        (RUN / sub).mkdir(parents=True)
    local = [str(shutil.copy(d, RUN / "debs")) for d in debs]
    for tree in TREES:
        (RUN / "upper" / tree).mkdir()
        (RUN / "work" / tree).mkdir()
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir=/{tree},upperdir={RUN}/upper/{tree},workdir={RUN}/work/{tree}", f"/{tree}")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "sandbox-tmp", "/tmp")
    pathlib.Path("/run/systemd/system").mkdir(parents=True)
    pathlib.Path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
    fake = RUN / "bin" / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL)
    fake.chmod(0o755)
    return local


def sysctls() -> dict[str, str]:
    """The namespace's ARP / rp_filter sysctls of every interface, and the global ones."""
    out = {}
    for conf in sorted(pathlib.Path("/proc/sys/net/ipv4/conf").iterdir()):
        for key in SYSCTL_KEYS:
            out[f"ipv4/conf/{conf.name}/{key}"] = (conf / key).read_text().strip()
    for key in GLOBAL_SYSCTLS:
        p = pathlib.Path("/proc/sys/net") / key
        if p.exists():
            out[key] = p.read_text().strip()
    return out


def dpkg(*args: str) -> dict:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive",
               PATH=f"{RUN}/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    p = subprocess.run(["dpkg", *args], capture_output=True, text=True, env=env, check=False)
    return {"argv": ["dpkg", *args], "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def systemctl_calls() -> list[str]:
    log = RUN / "systemctl.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def run(*argv: str) -> dict:
    p = subprocess.run(argv, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                       check=False)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def installed_facts() -> dict:
    pylib = pathlib.Path("/usr/lib/python3/dist-packages")
    return {
        "bytecode": sorted(str(p.relative_to(pylib)) for p in pylib.glob("vmac*/**/__pycache__")),
        "wants_link": os.readlink(WANTS) if os.path.islink(WANTS) else None,
        "conffiles": sh("dpkg-query", "-W", "-f=${Conffiles}", "vmacd", check=False).stdout,
        "version": run("/usr/bin/vmacd", "--version"),
        "check": run("/usr/bin/vmacd", "check", "--no-preflight", "-c", "/etc/vmacd/vmacd.toml"),
        "ctl": run("/usr/bin/vmacctl", "-s", "/run/sandbox/none.sock", "status"),
        "lab": run("/usr/bin/python3", "-I", "-c", "from vmaclab.topology import builtin_dir, resolve; "
                   "from vmaclab.cli import SCENARIO_DIR; print(builtin_dir()); print(SCENARIO_DIR); "
                   "print(sorted(resolve('pair').nodes))"),
        "lab_help": run("/usr/bin/vmac-lab", "--help"),
    }


def upper_layers() -> dict[str, list[str]]:
    """What the overlays' upper layers hold: files and symlinks (created or changed), and
    whiteouts (host files deleted). Directories copied up on the way are not listed."""
    made, deleted = [], []
    for tree in TREES:
        upper = RUN / "upper" / tree
        for dirpath, dirnames, filenames in os.walk(upper):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                rel = "/" + tree + "/" + os.path.relpath(full, upper)
                st = os.lstat(full)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    deleted.append(rel)
                else:
                    made.append(rel)
    return {"made": sorted(made), "deleted": sorted(deleted)}


def main(debs: list[str]) -> dict:
    local = setup(debs)
    baseline = upper_layers()         # the sandbox's own changes (policy-rc.d hidden)
    report: dict = {"sysctl_before": sysctls()}
    report["install"] = dpkg("-i", *local)
    report["install_systemctl"] = systemctl_calls()
    report["sysctl_installed"] = sysctls()
    report["installed"] = installed_facts()
    # a configuration the daemon accepts, then the same packages again: dpkg runs the upgrade path
    pathlib.Path("/etc/vmacd/vmacd.toml").write_text(VALID_CONFIG)
    report["upgrade"] = dpkg("--force-confold", "-i", *local)
    report["upgrade_systemctl"] = systemctl_calls()
    report["sysctl_upgraded"] = sysctls()
    pathlib.Path("/var/lib/vmacd/maintenance.json").write_text("{}\n")   # state the daemon kept
    names = [sh("dpkg-deb", "-f", d, "Package").stdout.strip() for d in local]
    report["purge"] = dpkg("--purge", *reversed(names))
    report["purge_systemctl"] = systemctl_calls()
    report["sysctl_after"] = sysctls()
    report["after_purge"] = {p: os.path.lexists(p) for p in (
        "/usr/lib/python3/dist-packages/vmacd", "/usr/lib/python3/dist-packages/vmaclab",
        "/etc/vmacd", "/var/lib/vmacd", "/usr/share/doc/vmacd", "/usr/share/vmacd",
        "/usr/share/vmacd-lab", "/lib/systemd/system/vmacd.service", "/usr/bin/vmacd", WANTS)}
    final = upper_layers()
    report["leftovers"] = {k: sorted(set(final[k]) - set(baseline[k])) for k in final}
    return report


if __name__ == "__main__":
    if os.geteuid() != 0 or len(sys.argv) < 2:
        sys.exit("usage (root, in private mount and net namespaces): deb_sandbox.py DEB...")
    json.dump(main(sys.argv[1:]), sys.stdout, indent=1)
