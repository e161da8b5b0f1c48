"""Probe analysis definitions, the run record (JSON round trip, RFC bound) and the PNG timeline."""
from __future__ import annotations

import json

import pytest
from vmaclab.prober import ProbeResult, ProbeSummary, analyze
from vmaclab.record import RunRecord, events_from_observer, rfc_bounds, save_records

MS = 1_000_000
pytestmark = pytest.mark.timeout(60)


def _probes(n: int, lost: range, late: dict[int, int] | None = None, switch_at: int = 10**9
            ) -> list[ProbeResult]:
    """n probes every 5 ms, 1 ms RTT; ``lost`` unanswered; ``late``: seq -> receive time (ms)."""
    out = []
    for i in range(n):
        recv = None if i in lost else i * 5 * MS + MS
        if late and i in late:
            recv = late[i] * MS
        out.append(ProbeResult(i, i * 5 * MS, 1000 * (i % 3), recv, "r1" if i < switch_at else "r2"))
    return out


def test_analyze_outage_lost_and_switch():
    s = analyze(_probes(200, range(50, 110), switch_at=110), interval_ms=5.0)
    # last reply before: probe 49 at 246 ms; first after: probe 110 at 551 ms
    assert (s.lost, s.outage_ms, s.outage_open) == (60, 305.0, False)
    assert s.loss_intervals == [[250 * MS, 545 * MS, 60]]
    assert [(w["from"], w["to"], w["t_ns"]) for w in s.switches] == [("r1", "r2", 551 * MS)]
    assert s.jitter_us == {"p50": 1.0, "p99": 2.0, "max": 2.0}
    clean = analyze(_probes(100, range(0)), interval_ms=5.0)
    assert (clean.lost, clean.outage_ms, clean.switches, clean.max_gap_ms) == (0, 0.0, [], 5.0)


def test_analyze_late_queued_replies_end_the_outage_and_open_outage():
    # probes 20..79 answered only at 400 ms (queued while unresolved): service is back at 400 ms;
    # 20..59 waited more than late_ms (100 ms)
    late = dict.fromkeys(range(20, 80), 400)
    s = analyze(_probes(100, range(0), late=late), interval_ms=5.0)
    assert (s.lost, s.late, s.outage_ms) == (0, 40, 304.0)
    tail = analyze(_probes(100, range(80, 100)), interval_ms=5.0, end_ns=600 * MS)
    assert tail.outage_open and tail.outage_ms == 600 - 396
    assert ProbeSummary.from_dict(json.loads(json.dumps(tail.to_dict()))) == tail


def test_rfc_bounds_match_the_spec_example():
    mdi, skew = rfc_bounds(100, 100)
    assert round(mdi) == 361 and round(skew) == 61
    assert rfc_bounds(1000, 255) == (3000 + 1000 / 256, 1000 / 256)
    with pytest.raises(ValueError):
        rfc_bounds(100, 0)


def _record() -> RunRecord:
    s = analyze(_probes(200, range(50, 110), switch_at=110), interval_ms=5.0)
    rec = RunRecord("vmacd", "crash", 100, run=2, old_master="r1", new_master="r2", nodes=["r1", "r2"],
                    probe=s.to_dict())
    rec.add_event(0, "state", node="r1", state="master")
    rec.add_event(0, "state", node="r2", state="backup")
    rec.add_fault(240 * MS, "r1", "crash")
    rec.add_event(240 * MS, "state", node="r1", state="stopped")
    rec.add_event(560 * MS, "state", node="r2", state="master", reason="master down")
    obs = [{"type": "frame", "t_ns": t * MS, "ifname": "p-r1" if t < 240 else "p-r2", "dir": "rx",
            "src_mac": "00:00:5e:00:01:33", "kind": "vrrp", "vrid": 51, "priority": 200} for t in
           list(range(0, 240, 100)) + list(range(560, 1000, 100))]
    obs.append({"type": "frame", "t_ns": 561 * MS, "ifname": "p-r2", "dir": "rx", "kind": "arp",
                "gratuitous": True, "src_ip": "192.0.2.254", "src_mac": "00:00:5e:00:01:33"})
    obs += [{"type": "fdb", "t_ns": t * MS, "event": "new", "mac": "00:00:5e:00:01:33", "port": p}
            for t, p in ((5, "p-r1"), (561, "p-r2"))]
    for e in events_from_observer(obs, {"p-r1": "r1", "p-r2": "r2"}, ["00:00:5e:00:01:33"]):
        rec.add_event(**e)
    return rec


def test_record_round_trips_and_bench_row(tmp_path):
    rec = _record()
    assert len(rec.events_of("advert", "r1")) == 3 and len(rec.events_of("advert", "r2")) == 5
    assert len(rec.events_of("garp", "r2")) == 1 and rec.events_of("garp", "r1") == []
    assert [(e["from"], e["to"], e["node"]) for e in rec.events_of("fdb")] == [(None, "p-r1", "r1"),
                                                                             ("p-r1", "p-r2", "r2")]
    back = RunRecord.load(rec.save(str(tmp_path / "run.json")))
    assert back == rec and back.outage_ms == 305.0 and back.lost == 60
    assert back.bound_ns == 240 * MS + int(rec.mdi_ms * MS)
    with open(save_records([rec], str(tmp_path / "bench.json"))) as fh:
        row = json.loads(fh.read())[0]
    assert set(row) == {"impl", "event", "advert_ms", "run", "outage_ms", "lost", "mdi_ms", "skew_ms",
                        "old_master", "new_master"}
    assert (row["outage_ms"], row["mdi_ms"], row["new_master"]) == (305.0, 360.938, "r2")


def test_plot_writes_a_readable_png(tmp_path):
    import matplotlib.image as mpimg
    from vmaclab.plot import plot_timeline
    out = plot_timeline(_record(), str(tmp_path / "timeline.png"))
    with open(out, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    img = mpimg.imread(out)
    colors = {tuple(round(float(c), 1) for c in px[:3]) for px in img.reshape(-1, img.shape[2])[::7]}
    assert len(colors) >= 8, "blank or near-blank picture"
