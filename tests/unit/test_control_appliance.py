"""appliance/: systemd unit, sysctl.d, Prometheus rules (promtool), Grafana dashboard, notify
script, and the man pages of the Debian packages (the packages themselves: tests/netns/test_deb.py)."""
from __future__ import annotations

import argparse
import configparser
import importlib
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from vmacd.control.metrics import FAMILIES as METRIC_FAMILIES
from vmacd.control.procstat import FAMILIES as PROCESS_FAMILIES

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPLIANCE = ROOT / "appliance"
PROMTOOL = shutil.which("promtool")
# every family the daemon exposes, from the code that writes them
EXPOSED = {f.name for f in METRIC_FAMILIES} | {f.name for f in PROCESS_FAMILIES}
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (apt-get install prometheus)")


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """subprocess.run that captures text output and leaves the exit status to the test."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, check=False, **kw)


def metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\b(?:vmacd|process)_[a-z_]+", text))
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


def test_rules_cover_the_required_alerts_and_only_exposed_metrics():
    text = (APPLIANCE / "prometheus" / "vmacd.rules.yml").read_text()
    alerts = set(re.findall(r"alert: (\w+)", text))
    assert {"VmacdDown", "VmacdDualMaster", "VmacdDualMasterSeen", "VmacdNoMaster", "VmacdFlapping",
            "VmacdAdvertsLate", "VmacdPacketDrops", "VmacdOwnFrames", "VmacdResourceFailed",
            "VmacdInterfaceMissing", "VmacdLoopStalled", "VmacdSiteLabelMissing"} <= alerts
    assert metric_names(text) <= EXPOSED, metric_names(text) - EXPOSED
    tests = (APPLIANCE / "prometheus" / "vmacd.rules.test.yml").read_text()
    assert alerts <= set(re.findall(r"alertname: (\w+)", tests)), "every alert has a promtool test"
    # the label of the VRRP instance is vrrp_instance (never renamed by Prometheus)
    assert "exported_instance" not in text + tests
    # the promtool tests run two sites reusing VRID 51 and the name lan
    assert {"paris", "lyon"} <= set(re.findall(r'site="(\w+)"', tests))


def test_rules_never_mix_sites():
    """Every aggregation and every match of the rules keeps the target labels that tell sites
    apart (docs/metrics.md: a fleet sets `site` on its scrape targets)."""
    text = (APPLIANCE / "prometheus" / "vmacd.rules.yml").read_text()
    rules = text[text.index("groups:"):]
    clauses = re.findall(r"\b(by|on|without|ignoring) \(([^)]*)\)", rules)
    assert clauses
    for kind, labels in clauses:
        names = {n.strip() for n in labels.split(",")}
        if kind in ("by", "on"):
            assert {"job", "site"} <= names, (kind, labels)
        else:                                   # without/ignoring may only drop non-target labels
            assert not names & {"job", "site", "instance"}, (kind, labels)
    assert not re.search(r"\b(sum|count|max|min|avg)\s*\(", rules), "aggregate without a by clause"


# ---------------------------------------------------------------- grafana


def dashboard() -> dict:
    return json.loads((APPLIANCE / "grafana" / "vmacd.json").read_text())


def dashboard_exprs(d: dict) -> list[str]:
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])]


def test_dashboard_uses_exposed_metrics_and_covers_them():
    d = dashboard()
    exprs = dashboard_exprs(d)
    assert exprs and all(isinstance(e, str) and e for e in exprs)
    used = metric_names("\n".join(exprs))
    assert used <= EXPOSED, used - EXPOSED
    assert used == EXPOSED, f"not on the dashboard: {EXPOSED - used}"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "site", "node", "vrrp"}
    text = json.dumps(d)
    assert "exported_instance" not in text
    for e in exprs:                               # every query follows the site and node pickers
        assert 'site=~"$site"' in e and 'instance=~"$node"' in e, e


def test_dashboard_declares_no_unused_input():
    d = dashboard()
    text = json.dumps({k: v for k, v in d.items() if k != "__inputs"})
    for inp in d.get("__inputs", []):
        assert "${" + inp["name"] + "}" in text, f"__inputs {inp['name']} is never used"
    uids = {json.dumps(p["datasource"]) for p in d["panels"]}
    uids |= {json.dumps(t["datasource"]) for p in d["panels"] for t in p["targets"]}
    assert uids == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}


def dashboard_promql(expr: str, variables: list[str]) -> str:
    """A panel query as Prometheus sees it once Grafana filled in its variables."""
    expr = expr.replace("$__rate_interval", "1m")
    for name in variables:
        expr = expr.replace(f"${name}", ".*")
    assert "$" not in expr, expr
    return expr


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    d = dashboard()
    variables = [v["name"] for v in d["templating"]["list"]]
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, panel in enumerate(d["panels"]):
        for t in panel["targets"]:
            rules += [f"      - record: dashboard:panel{i}:{t['refId']}",
                      f"        expr: {json.dumps(dashboard_promql(t['expr'], variables))}"]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["definition"])
            assert m, v["definition"]
            rules += [f"      - record: dashboard:var:{v['name']}",
                      f"        expr: {json.dumps(dashboard_promql(m.group(1), variables))}"]
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


# ---------------------------------------------------------------- man pages (.deb: tests/netns/test_deb.py)

MAN = APPLIANCE / "debian" / "man"


def man_text(page: str) -> str:
    """The page's source with roff's escaped hyphens plain."""
    return (MAN / page).read_text().replace("\\-", "-")


def cli_words(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(subcommand names, long options) of a parser and all its subparsers."""
    commands, options = set(), set()
    for action in parser._actions:
        options |= {o for o in action.option_strings if o.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.add(name)
                c, o = cli_words(sub)
                commands |= c
                options |= o
    return commands, options


@pytest.mark.parametrize("page, build", [
    ("vmacd.8", "vmacd.cli.main"), ("vmacctl.8", "vmacd.cli.ctl"), ("vmac-lab.8", "vmaclab.cli")])
def test_man_page_documents_exactly_the_cli(page, build):
    commands, options = cli_words(importlib.import_module(build).build_parser())
    text = man_text(page)
    documented = set(re.findall(r"(?<![\\w-])--[a-z][a-z-]*", text))
    assert documented == options, f"{page}: missing {options - documented}, unknown {documented - options}"
    for name in commands:
        heading = re.search(rf"^\.(B|TP|BR) .*\b{re.escape(name)}\b", text, re.MULTILINE)
        assert heading or f"\\fB{name}\\fP" in text, f"{page}: command {name} not documented"


def test_config_man_page_documents_every_key():
    from vmacd.config import instance, load

    sections = dict(re.findall(r"^\.SH (\S+)\n(.*?)(?=^\.SH |\Z)", man_text("vmacd.toml.5"),
                               re.MULTILINE | re.DOTALL))
    tables = {"[global]": load.GLOBAL_KEYS, "[auth.NAME]": load.AUTH_KEYS,
              "[[instance]]": instance.INSTANCE_KEYS,
              "[track_script.NAME]": load.SCRIPT_KEYS, "[resource.NAME]": load.RESOURCE_KEYS,
              "[sync_group.NAME]": ("instances",)}
    for table, keys in tables.items():
        assert table in sections, f"no section {table}"
        entries = re.findall(r"^\.TP\n(.*)$", sections[table], re.MULTILINE)     # the tagged paragraphs' tags
        words = set(re.findall(r"[a-z_0-9]+", " ".join(entries)))
        assert set(keys) <= words, f"{table}: keys without an entry: {set(keys) - words}"
