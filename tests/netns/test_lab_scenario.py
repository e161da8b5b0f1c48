"""The scenario runner measures a keepalived crash failover as the client sees it."""
from __future__ import annotations

import json
from pathlib import Path

from vmaclab import scenario


def test_keepalived_crash_scenario_record(tmp_path: Path) -> None:
    sc = scenario.Scenario(topology="pair", impl="keepalived", event="crash", advert_ms=100,
                           before_ms=200, after_ms=300)
    rec = scenario.run(sc, tmp_path)
    assert (rec["old_master"], rec["new_master"]) == ("r1", "r2")
    assert abs(rec["mdi_ms"] - (3 * 100 + (256 - 150) * 100 / 256)) < 0.01
    # the client saw an outage of about one Master_Down_Interval: a crash falls at a random
    # phase of the advert cycle, so MDI - interval .. MDI, plus reaction delay; the bound
    assert 0.5 * rec["mdi_ms"] < rec["outage_ms"] < 1.5 * rec["mdi_ms"], rec["outage_ms"]
    assert rec["lost"] > 0 and rec["probe"]["last_responder"] == "r2"
    states = [(e["node"], e["state"]) for e in rec["events"] if e["kind"] == "state"]
    assert ("r2", "master") in states
    saved = json.loads((tmp_path / "keepalived-crash-100ms-run0.json").read_text())
    assert saved["outage_ms"] == rec["outage_ms"]
