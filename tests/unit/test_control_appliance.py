"""appliance/: systemd unit, sysctl.d, Prometheus rules (promtool), Grafana dashboard, notify
script, and the .deb built by appliance/debian/build-deb.sh (`make deb`)."""
from __future__ import annotations

import configparser
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPLIANCE = ROOT / "appliance"
PROMTOOL = shutil.which("promtool")
SPEC_METRICS = {
    "vmacd_instance_state", "vmacd_instance_priority", "vmacd_instance_effective_priority",
    "vmacd_transitions_total", "vmacd_last_transition_timestamp_seconds",
    "vmacd_adverts_sent_total", "vmacd_adverts_received_total", "vmacd_packets_dropped_total",
    "vmacd_adverts_late_total", "vmacd_advert_interval_seconds", "vmacd_master_seen_info",
    "vmacd_dual_master_total", "vmacd_checksum_variant_total", "vmacd_track_up",
    "vmacd_garp_sent_total", "vmacd_build_info",
}
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (apt-get install prometheus)")


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """subprocess.run that captures text output and leaves the exit status to the test."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, check=False, **kw)


def metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bvmacd_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


# ---------------------------------------------------------------- systemd unit


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str  # keep the case of systemd keys
    cp.read(APPLIANCE / "vmacd.service")
    return cp


def test_unit_is_notify_with_watchdog_and_guardian_safe_killmode():
    svc = unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["ExecStart"].startswith("/usr/bin/vmacd run -c /etc/vmacd/vmacd.toml")
    assert "vmacctl" in svc["ExecReload"] and svc["ExecReload"].endswith("reload")
    assert re.fullmatch(r"\d+s", svc["WatchdogSec"])
    # the guardian must outlive the daemon: systemd waits for the whole cgroup (see the unit)
    assert svc["KillMode"] == "control-group"
    assert "WatchdogSignal" not in svc or svc["WatchdogSignal"] != "SIGKILL"
    assert svc["RuntimeDirectory"] == "vmacd" and svc["RuntimeDirectoryMode"] == "0700"
    assert "ProtectKernelModules" not in svc   # macvlan module autoload
    text = (APPLIANCE / "vmacd.service").read_text()
    assert "KillMode=mixed was rejected" in text and "guardian" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_verifies_apart_from_missing_binaries():
    p = run(["systemd-analyze", "verify", str(APPLIANCE / "vmacd.service")],
                       capture_output=True, text=True, timeout=60)
    problems = [line for line in (p.stdout + p.stderr).splitlines()
                if line.strip() and "is not executable" not in line]
    assert problems == []


# ---------------------------------------------------------------- sysctl


def test_sysctl_settings_exist_and_match_preflight():
    settings = {}
    for line in (APPLIANCE / "sysctl.d" / "90-vmacd.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    assert settings["net.ipv4.conf.all.arp_ignore"] == "1"
    assert settings["net.ipv4.conf.all.arp_announce"] == "2"
    assert settings["net.ipv4.conf.all.rp_filter"] == "2"
    for key in settings:
        path = pathlib.Path("/proc/sys") / key.replace(".", "/")
        if pathlib.Path("/proc/sys/net/ipv4").exists() and "ipv6" not in key:
            assert path.exists(), f"{key}: no such sysctl"


# ---------------------------------------------------------------- prometheus


@needs_promtool
def test_promtool_check_rules():
    p = run([PROMTOOL, "check", "rules", str(APPLIANCE / "prometheus" / "vmacd.rules.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


@needs_promtool
def test_promtool_test_rules():
    p = run([PROMTOOL, "test", "rules", "vmacd.rules.test.yml"], cwd=APPLIANCE / "prometheus",
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_rules_cover_the_required_alerts_and_only_spec_metrics():
    text = (APPLIANCE / "prometheus" / "vmacd.rules.yml").read_text()
    alerts = set(re.findall(r"alert: (\w+)", text))
    assert {"VmacdDown", "VmacdDualMaster", "VmacdNoMaster", "VmacdFlapping", "VmacdAdvertsLate",
            "VmacdPacketDrops"} <= alerts
    assert metric_names(text) <= SPEC_METRICS
    tests = (APPLIANCE / "prometheus" / "vmacd.rules.test.yml").read_text()
    assert alerts <= set(re.findall(r"alertname: (\w+)", tests)), "every alert has a promtool test"


# ---------------------------------------------------------------- grafana


def dashboard() -> dict:
    return json.loads((APPLIANCE / "grafana" / "vmacd.json").read_text())


def test_dashboard_uses_spec_metrics_and_covers_them():
    d = dashboard()
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert exprs and all(isinstance(e, str) and e for e in exprs)
    used = metric_names("\n".join(exprs))
    assert used <= SPEC_METRICS, used - SPEC_METRICS
    assert used == SPEC_METRICS, f"not on the dashboard: {SPEC_METRICS - used}"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "node", "vrrp"}


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, panel in enumerate(dashboard()["panels"]):
        for t in panel["targets"]:
            expr = (t["expr"].replace("$__rate_interval", "1m").replace("$node", ".*").replace("$vrrp", ".*"))
            rules += [f"      - record: dashboard:panel{i}:{t['refId']}", f"        expr: {json.dumps(expr)}"]
    f = tmp_path / "dash.rules.yml"
    f.write_text("\n".join(rules) + "\n")
    p = run([PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- notify script


@pytest.mark.parametrize("args, rc", [
    (["INSTANCE", "lan", "MASTER", "150"], 0),
    (["GROUP", "router", "BACKUP", "100"], 0),
    (["INSTANCE", "lan", "FAULT", "0"], 0),
    (["INSTANCE", "lan", "STOP", "0"], 0),
    (["INSTANCE", "lan", "ACTIVE", "1"], 1),
    (["INSTANCE"], 2),
])
def test_notify_example_takes_keepalived_arguments(args, rc):
    script = APPLIANCE / "notify.sh.example"
    assert run(["sh", "-n", str(script)]).returncode == 0
    p = run(["sh", str(script), *args], capture_output=True, text=True, timeout=20)
    assert p.returncode == rc, p.stderr


# ---------------------------------------------------------------- the .deb


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="no dpkg-deb")
def test_make_deb_builds_a_sane_package():
    out = tempfile.mkdtemp(prefix="vmacd-deb-out-")
    try:
        p = run(["bash", str(APPLIANCE / "debian" / "build-deb.sh"), out], capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, PYTHON=sys.executable))
        assert p.returncode == 0, p.stderr[-3000:]
        deb = pathlib.Path(p.stdout.strip().splitlines()[-1])
        assert deb.is_file() and deb.name.startswith("vmacd_")
        info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                              check=True).stdout
        assert "Package: vmacd" in info and "Depends: python3 (>= 3.11)" in info
        for script in ("postinst", "prerm", "postrm"):
            assert script in info
        contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True,
                                  check=True).stdout
        for path in ("./usr/bin/vmacd", "./usr/bin/vmacctl", "./usr/bin/vmac-lab",
                     "./lib/systemd/system/vmacd.service", "./usr/lib/sysctl.d/90-vmacd.conf",
                     "./usr/share/vmacd/prometheus/vmacd.rules.yml", "./usr/share/vmacd/grafana/vmacd.json",
                     "./usr/lib/vmacd/vmacd/control/server.py", "./usr/lib/vmacd/pyroute2/",
                     "./usr/lib/vmacd/prometheus_client/", "./usr/lib/vmacd/cryptography/"):
            assert f" {path}" in contents or f"{path}\n" in contents, path
        assert "__pycache__" not in contents and "/.venv/" not in contents
        # chroot-free install check: unpack and run the entry points with Debian's python3
        tree = pathlib.Path(out) / "tree"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        v = run([str(tree / "usr/bin/vmacd"), "--version"], capture_output=True, text=True, timeout=60)
        assert v.returncode == 0 and v.stdout.strip().startswith("vmacd "), v.stderr
        c = run([str(tree / "usr/bin/vmacctl"), "-s", str(tree / "none.sock"), "status"],
                           capture_output=True, text=True, timeout=60)
        assert c.returncode == 2 and "cannot reach vmacd" in c.stderr
        imp = run(["/usr/bin/python3", "-I", "-c",
                              ("import sys; sys.path.insert(0, sys.argv[1]); import vmacd.control.metrics, "
                               "pyroute2, cryptography.hazmat.primitives.hmac, netifaces; "
                               "print(vmacd.__file__)"),
                              str(tree / "usr/lib/vmacd")], capture_output=True, text=True, timeout=60)
        assert imp.returncode == 0, imp.stderr
        assert imp.stdout.strip().startswith(str(tree)), "vendored vmacd, not the dev tree"
        dry = run(["dpkg", "--dry-run", "-i", str(deb)], capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0, dry.stdout + dry.stderr
    finally:
        shutil.rmtree(out, ignore_errors=True)
