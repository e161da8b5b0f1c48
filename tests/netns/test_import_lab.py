"""`vmacd import heartbeat` run inside lab nodes with two NICs, as a migrating user runs it: the
service LAN (192.0.2.0/24, eth0) and Heartbeat's own link (198.51.100.0/24, eth1, named by the
seed's `bcast eth1` / `ucast eth1`). The instance must land on the VIP's LAN, with its prefix,
and the cluster built from the imported files must serve the VIP there from the virtual MAC."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

from vmaclab.topology import Topology
from vmaclab.util import wait_until

from vmacd.config.emit import dumps

HA_D = Path(__file__).resolve().parents[2] / "netns-lab" / "ha.d"
NODES = {"r1": "linux-ha-a", "r2": "linux-ha-b"}
VMAC = "00:00:5e:00:01:01"              # vrid 1: the first haresources line


def two_nics() -> Topology:
    topo = Topology("hb")
    topo.add_lan("lan", v4="192.0.2.0/24")
    topo.add_lan("hb", v4="198.51.100.0/24")
    for node in NODES:
        topo.add_router(node, ["lan", "hb"])
    topo.add_client("c1", ["lan"])
    return topo


def vmacd(lb, node, *args, check=True):
    return lb.run(node, [sys.executable, "-m", "vmacd", *args], check=check, timeout=30)


def import_on(lb, node) -> tuple[Path, subprocess.CompletedProcess]:
    out = lb.workdir(node) / "vmacd.toml"
    res = vmacd(lb, node, "import", "heartbeat", str(HA_D), "--node", NODES[node], "-o", str(out))
    return out, res


def test_import_puts_the_instance_on_the_vip_lan_and_check_names_only_the_service(lab):
    lb = lab(two_nics())
    out, res = import_on(lb, "r1")
    doc = tomllib.loads(out.read_text())
    [inst] = doc["instance"]
    assert (inst["interface"], inst["virtual_ips"]) == ("eth0", ["192.0.2.254/24"])
    assert "unicast_peers" not in inst and inst["priority"] == 150
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = Path(doc["auth"]["heartbeat"]["key_file"])
    assert key.parent == out.parent and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "note: ha.cf:7: bcast eth1: Heartbeat's heartbeat path, not used" in res.stderr
    assert "note: ha.cf:8: ucast eth1 198.51.100.11: dropped: 198.51.100.11 is not on the VIP's " \
           "LAN (eth0 192.0.2.0/24) (an address of this box" in res.stderr
    assert "no service httpd on this box" in res.stderr

    chk = vmacd(lb, "r1", "check", "-c", str(out), check=False)
    errors = [line for line in chk.stderr.splitlines() if ": error: " in line]
    assert chk.returncode == 1, chk.stderr
    assert [e.split(": error: ")[0] for e in errors] == [
        f"{out}: resource.httpd.{key}" for key in ("start", "stop", "monitor")]
    assert all("service httpd does not exist on this box" in e for e in errors), errors


def test_the_imported_cluster_serves_the_vip_from_the_service_lan(lab):
    """Change only the resource commands (and skip initdead's 2-minute wait), run both nodes."""
    lb = lab(two_nics())
    procs = {}
    try:
        for node in NODES:
            conf = adapt(lb, node, import_on(lb, node)[0])
            log = (lb.workdir(node) / "vmacd.log").open("ab")
            procs[node] = lb.popen(node, [sys.executable, "-m", "vmacd", "run", "-c", str(conf)],
                                   stdout=log, stderr=subprocess.STDOUT)
            log.close()
        # keepalive 2 -> adverts every 2 s: the first master after Master_Down_Interval (~7 s)
        wait_until(lambda: states(lb) == {"r1": "master", "r2": "backup"}, 20, what="election")
        link = vmac_link(lb, "r1")
        assert link["link"] == "eth0" and "192.0.2.254/24" in addrs(link)
        assert vmac_link(lb, "r2") is None or "192.0.2.254/24" not in addrs(vmac_link(lb, "r2"))
        lb.run("c1", ["ping", "-c", "1", "-W", "2", "192.0.2.254"])
        neigh = json.loads(lb.run("c1", ["ip", "-j", "neigh", "show", "192.0.2.254"]).stdout)
        assert neigh[0]["lladdr"] == VMAC
        assert (lb.workdir("r1") / "httpd.started").exists()
        assert not (lb.workdir("r2") / "httpd.started").exists()
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(timeout=15)


def adapt(lb, node, conf: Path) -> Path:
    """What a user on this box edits: httpd -> a command that exists; the lab's own paths."""
    doc = tomllib.loads(conf.read_text())
    wd = lb.workdir(node)
    flag = str(wd / "httpd.started")
    doc["resource"]["httpd"].update(start=["/usr/bin/touch", flag], stop=["/bin/rm", "-f", flag],
                                    monitor=["/usr/bin/test", "-e", flag], monitor_interval="1s")
    doc["global"].update(control_socket=str(wd / "vmacd.sock"), metrics_listen="",
                         state_dir=str(wd / "state"))
    del doc["instance"][0]["startup_delay"]
    conf.write_text(dumps(doc))
    os.chmod(conf, 0o600)
    vmacd(lb, node, "check", "-c", str(conf))       # exits 1 (raising) on any error
    return conf


def states(lb) -> dict[str, str]:
    from vmacd.cli.ctl import Unreachable, request
    out = {}
    for node in NODES:
        try:
            reply = request(str(lb.workdir(node) / "vmacd.sock"), {"cmd": "status"}, timeout=2.0)
            out[node] = reply["instances"][0]["state"]
        except (Unreachable, OSError, ValueError, KeyError, IndexError):
            out[node] = "?"
    return out


def vmac_link(lb, node) -> dict | None:
    links = json.loads(lb.run(node, ["ip", "-j", "-d", "addr", "show"]).stdout)
    found = [lk for lk in links if lk.get("address") == VMAC
             and lk.get("linkinfo", {}).get("info_kind") == "macvlan"]
    return found[0] if found else None


def addrs(link: dict) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
