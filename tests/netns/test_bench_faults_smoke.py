"""`vmac-lab bench faults` end to end on one short row (vmacd, partition + heal): exit 0, the
record's keys, and figures that match what a partition does on the wire."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vmaclab.faultcases import rfc_takeovers
from vmaclab.lab import lab_namespaces

pytestmark = pytest.mark.netns

ROW_KEYS = {"impl", "fault", "case", "run", "advert_ms", "mdi_ms", "sent", "lost", "outage_ms",
            "transitions", "invariant", "held", "prefix"}


def test_bench_faults_partition_smoke(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "vmaclab.cli", "bench", "faults", "--impl", "vmacd",
                         "--fault", "partition", "--runs", "1", "--json", str(out)],
                        check=False, capture_output=True, text=True, timeout=90,
                        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    took = time.monotonic() - t0
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert took < 30, f"bench faults smoke took {took:.0f} s"
    (row,) = json.loads(out.read_text())
    assert set(row) >= ROW_KEYS, row
    assert (row["impl"], row["fault"], row["case"], row["run"]) == ("vmacd", "partition",
                                                                    "partition + heal", 0)
    mdi = 300 + (256 - 150) * 100 / 256
    assert row["mdi_ms"] == pytest.approx(mdi, abs=0.1)
    # the client sits with r2: it loses the VIP until r2 takes over behind the partition
    assert row["both_master"] is True
    assert 0.3 * mdi <= row["outage_ms"] <= 1.5 * mdi, row
    assert row["lost"] > 0
    # r2: backup -> master (partition) -> backup (heal); r1 stays master throughout
    assert row["transitions"] == {"r1": 0, "r2": 2}, row
    assert row["winner"] == "r1"
    # after the heal the first advertisement crosses within one interval (plus scheduling slack)
    assert 0 <= row["cross_ms"] <= 100 + 50, row
    assert row["garps_partition"] >= 1            # r2 announced the VIP when it took over
    assert "partition + heal" in cp.stdout and "invariants:" in cp.stdout
    assert not lab_namespaces(row["prefix"]), "bench left its namespaces behind"


def test_rfc_takeover_expectation_matches_a_simulated_backup_timer() -> None:
    """The "RFC expects" figure of the loss rows: a backup whose Master_Down timer restarts at
    each advertisement received, adverts lost independently with probability p."""
    rng = random.Random(7)
    advert, mdi, n = 100.0, 341.4, 1_000_000
    for p in (0.1, 0.3):
        last, takeovers = 0.0, 0
        for k in range(1, n + 1):
            if rng.random() >= p:                 # received
                takeovers += (k * advert - last) > mdi
                last = k * advert
        want = rfc_takeovers(p, advert, mdi, n * advert / 1000)
        assert takeovers == pytest.approx(want, rel=0.1), (p, takeovers, want)
