"""The lab builds what the topology declares and leaves nothing of its prefix behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vmaclab.lab import Lab, lab_namespaces, list_labs
from vmaclab.topology import Topology
from vmaclab.util import RUN_ROOT, new_prefix, run, wait_until

VMAC_LAB = str(Path(sys.executable).parent / "vmac-lab")


def test_addressing_is_deterministic() -> None:
    topo = Topology("t")
    topo.add_lan("lan")
    topo.add_lan("up")
    for name in ("r1", "r2"):
        topo.add_router(name, ["lan", "up"])
    topo.add_client("c1", ["lan"])
    assert topo.addr("r1", "lan") == "192.0.2.11" and topo.addr("r2", "up") == "198.51.100.12"
    assert topo.addr("c1", "lan", 6) == "2001:db8:0:1::65" and topo.vip("lan") == "192.0.2.254"
    assert topo.ifname("r2", "up") == "eth1"
    with pytest.raises(ValueError):
        topo.add_router("R-1", ["lan"])
    with pytest.raises(ValueError):
        topo.add_client("c2", ["nolan"])


def _leftovers(prefix: str) -> list[str]:
    found = lab_namespaces(prefix)
    links = run(["ip", "-o", "link"]).stdout
    found += [line for line in links.splitlines() if prefix in line]
    found += [str(p) for p in [RUN_ROOT / prefix] if p.exists()]
    return found


def test_up_builds_and_down_removes_everything(lab) -> None:
    lb = lab("pair")
    assert set(lab_namespaces(lb.prefix)) == set(lb.namespaces())
    bns = lb.bridge_ns("lan")
    ports = run(["ip", "-n", bns, "-o", "link", "show", "master", lb.bridge("lan")]).stdout
    for node in ("r1", "r2", "c1"):
        assert lb.bridge_port(node, "lan") in ports
    cp = lb.run("c1", ["arping", "-c1", "-w2", "-I", "eth0", lb.addr("r2", "lan")])
    assert "Received 1 response" in cp.stdout
    run(["ip", "netns", "exec", bns, "nft", "add", "table", "bridge", f"{lb.prefix}faults"])
    state = json.loads((lb.rundir / "state.json").read_text())
    assert state["status"] == "up" and state["owner_pid"] == os.getpid()
    lb.down()
    assert _leftovers(lb.prefix) == []


def test_lab_torn_down_after_failing_test(tmp_path: Path) -> None:
    prefix = new_prefix()
    (tmp_path / "test_fails.py").write_text(textwrap.dedent(f"""
        from vmaclab.lab import Lab, lab_namespaces
        def test_fails():
            with Lab("pair", prefix="{prefix}") as lab:
                assert len(lab_namespaces("{prefix}")) == 4
                assert False, "on purpose"
    """))
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         str(tmp_path / "test_fails.py")], capture_output=True, text=True,
                        timeout=60, cwd=tmp_path, check=False)
    assert cp.returncode == 1 and "on purpose" in cp.stdout, cp.stdout
    assert _leftovers(prefix) == []


def test_sigkilled_up_cleaned_by_down_prefix(tmp_path: Path) -> None:
    prefix = new_prefix()
    proc = subprocess.Popen([VMAC_LAB, "up", "pair", "--prefix", prefix, "--wait"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (RUN_ROOT / prefix / "state.json").exists()
                   and json.loads((RUN_ROOT / prefix / "state.json").read_text())["status"] == "up",
                   15.0, what="vmac-lab up")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        assert len(lab_namespaces(prefix)) == 4
        info = next(entry for entry in list_labs() if entry["prefix"] == prefix)
        assert not info["owner_alive"]
        cp = subprocess.run([VMAC_LAB, "down", "--prefix", prefix], capture_output=True, text=True,
                            timeout=60, check=False)
        assert cp.returncode == 0, cp.stderr
        assert _leftovers(prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run([VMAC_LAB, "down", "--prefix", prefix], capture_output=True, timeout=60,
                       check=False)


def test_down_all_spares_labs_of_live_processes() -> None:
    with Lab("pair") as mine:
        cp = subprocess.run([VMAC_LAB, "down", "--all"], capture_output=True, text=True,
                            timeout=60, check=False)
        assert cp.returncode == 0, cp.stderr
        assert set(lab_namespaces(mine.prefix)) == set(mine.namespaces())
    assert _leftovers(mine.prefix) == []
