"""Client prober + echo responder against a real LAN: a VIP moved from r1 to r2 for a known time.

One scenario run (module fixture) is checked from several sides: the client's outage and loss, the
responder switch, the prober's own jitter, the bridge FDB move, the GARP and the dead box's silence, the
client's ARP entry, and the record/PNG built from all of it.
"""
from __future__ import annotations

import itertools
import time

import pytest
from measure_util import ADDRS, VIP, VMAC, MiniLan, garp_frame, send_frames_timed, sh
from vmaclab.observe import (
    Observer,
    fdb_moves,
    frames_from_mac,
    gratuitous_arps,
    neigh_entry,
    neigh_mac,
)
from vmaclab.prober import EchoServer, Prober, load_results

pytestmark = pytest.mark.timeout(60)

INTERVAL_MS = 5.0
HOLE_MS = 300.0
PORT = 7007


def sleep_until(t_ns: int) -> None:
    """Sleep to an absolute CLOCK_MONOTONIC deadline (a scenario schedule, not a condition wait)."""
    left = t_ns - time.monotonic_ns()
    if left > 0:
        time.sleep(left / 1e9)


@pytest.fixture(scope="module")
def lan():
    net = MiniLan().up()
    servers = []
    try:
        servers = [EchoServer.start(net.ns(n), n, PORT) for n in ("r1", "r2")]
        net.vip_up("r1")
        yield net
    finally:
        for s in servers:
            s.stop()
        net.down()


@pytest.fixture(scope="module")
def moved(lan, tmp_path_factory):
    """Probe the VIP; take it down on r1, bring it up on r2 HOLE_MS later with a GARP from the vMAC."""
    d = tmp_path_factory.mktemp("moved")
    obs = Observer.start(lan.ns("br"), ["p-r1", "p-r2", "p-c"], str(d / "obs.jsonl"), fdb_bridge="br0")
    prober = None
    try:
        prober = Prober.start(lan.ns("c"), VIP, PORT, INTERVAL_MS, str(d / "probes.jsonl"))
        start = time.monotonic_ns()
        sleep_until(start + 600_000_000)
        t_before = time.monotonic_ns()
        t_down = lan.vip_down("r1")
        sleep_until(t_before + int(HOLE_MS * 1e6))
        r2 = lan.ns("r2")
        sh("ip", "-n", r2, "link", "set", "vip0", "up")
        sh("ip", "-n", r2, "addr", "add", VIP + "/32", "dev", "vip0")
        t_garp, t_up = send_frames_timed(r2, "vip0", [garp_frame(VMAC, VIP)])[0]
        sleep_until(t_up + 500_000_000)
        summary = prober.stop()
        events = obs.stop()
    except BaseException:
        if prober:
            prober.proc.kill()
        obs.proc.kill()
        raise
    return {"summary": summary, "prober": prober, "events": events, "t_before": t_before, "t_down": t_down,
            "t_garp": t_garp, "t_up": t_up, "dir": d, "arp": neigh_entry(lan.ns("c"), VIP)}


def test_echo_names_router_and_answers_from_the_address_probed(lan, tmp_path):
    """Each router's echo names it; replies to a router's own address come from that router."""
    for node in ("r1", "r2"):
        p = Prober.start(lan.ns("c"), ADDRS[node], PORT, INTERVAL_MS, str(tmp_path / f"{node}.jsonl"),
                         duration_s=0.25)
        s = p.stop()
        assert s.sent >= 40 and s.lost == 0, s
        assert s.first_responder == node and s.last_responder == node and s.switches == []
        assert s.outage_ms == 0.0 and s.duplicates == 0


def test_outage_matches_injected_hole(moved):
    s, injected_ms = moved["summary"], (moved["t_up"] - moved["t_before"]) / 1e6
    assert injected_ms >= HOLE_MS
    # measured: last reply before the hole .. first reply after the GARP; within one interval + slack
    assert abs(s.outage_ms - injected_ms) <= 40.0, (s.outage_ms, injected_ms)
    assert not s.outage_open
    assert s.outage_start_ns <= moved["t_down"] and s.outage_end_ns >= moved["t_garp"]
    expected_lost = injected_ms / INTERVAL_MS
    assert expected_lost - 8 <= s.lost <= expected_lost + 2, (s.lost, expected_lost)
    assert len(s.loss_intervals) == 1 and s.loss_intervals[0][2] == s.lost


def test_responder_switches_from_r1_to_r2(moved):
    s = moved["summary"]
    assert [seg["responder"] for seg in s.responders] == ["r1", "r2"]
    assert len(s.switches) == 1 and s.switches[0]["from"] == "r1" and s.switches[0]["to"] == "r2"
    assert moved["t_garp"] <= s.switches[0]["t_ns"] <= moved["t_up"] + int(3 * INTERVAL_MS * 1e6)


def test_prober_jitter_is_reported_and_small(moved):
    s = moved["summary"]
    print(f"prober send lateness us: {s.jitter_us}  rtt ms: {s.rtt_ms}")
    assert set(s.jitter_us) == {"p50", "p99", "max"}
    assert 0 <= s.jitter_us["p50"] <= s.jitter_us["p99"] <= s.jitter_us["max"]
    assert s.jitter_us["p99"] < 5000.0, s.jitter_us  # generous: one interval (idle box: ~0.1-0.8 ms)
    meta, results = load_results(str(moved["dir"] / "probes.jsonl"))
    assert meta["interval_ms"] == INTERVAL_MS and len(results) == s.sent
    sends = [r.sent_ns - r.late_ns for r in results]  # scheduled deadlines: exact multiples
    assert all(b - a == int(INTERVAL_MS * 1e6) for a, b in itertools.pairwise(sends))


def test_fdb_moves_vmac_to_new_port_at_the_garp(moved):
    moves = fdb_moves(moved["events"], VMAC)
    assert moves and moves[-1]["from"] == "p-r1" and moves[-1]["to"] == "p-r2", moves
    assert moved["t_down"] <= moves[-1]["t_ns"] <= moved["t_up"] + 50_000_000


def test_observer_sees_garp_and_silence_of_old_box(moved):
    garps = [g for g in gratuitous_arps(moved["events"], ip=VIP) if g["ifname"] == "p-r2"]
    assert len(garps) == 1 and garps[0]["src_mac"] == VMAC and garps[0]["ts"] == "kernel"
    assert moved["t_garp"] <= garps[0]["t_ns"] <= moved["t_up"]  # kernel stamp inside the send() call
    assert frames_from_mac(moved["events"], VMAC, after_ns=moved["t_down"], ifname="p-r1") == []
    before = frames_from_mac(moved["events"], VMAC, ifname="p-r1")
    assert before == [] or before[-1]["t_ns"] < moved["t_down"]


def test_client_arp_entry_still_holds_vmac(moved, lan):
    assert moved["arp"] and moved["arp"]["mac"] == VMAC, moved["arp"]
    assert neigh_mac(lan.ns("c"), VIP) == VMAC
    requests = [e for e in moved["events"] if e.get("kind") == "arp" and e["op"] == 1 and e["dir"] == "rx"
                and e["ifname"] == "p-c" and e["dst_ip"] == VIP and e["t_ns"] >= moved["t_down"]]
    assert requests == []  # the client never had to ask again: the vMAC stayed the same


def test_icmp_mode_and_stop_file(lan, tmp_path):
    stop = tmp_path / "stop"
    p = Prober.start(lan.ns("c"), ADDRS["r2"], PORT, 2.0, str(tmp_path / "icmp.jsonl"), mode="icmp",
                     stop_file=str(stop))
    sleep_until(time.monotonic_ns() + 200_000_000)
    stop.touch()
    deadline = time.monotonic() + 5
    while p.proc.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not p.proc.running(), "prober ignored its stop file"
    s = p.stop()
    assert 60 <= s.sent <= 130 and s.lost == 0 and s.first_responder is None, s


def test_record_and_timeline_of_the_real_run(moved, tmp_path):
    from vmaclab.plot import plot_timeline
    from vmaclab.record import RunRecord, events_from_observer

    rec = RunRecord("manual", "vip-move", 100, old_master="r1", new_master="r2", nodes=["r1", "r2"],
                    probe=moved["summary"].to_dict())
    start = moved["summary"].start_ns
    rec.add_event(start, "state", node="r1", state="master")
    rec.add_event(start, "state", node="r2", state="backup")
    rec.add_fault(moved["t_before"], "r1", "vip-down")
    rec.add_event(moved["t_down"], "state", node="r1", state="backup")
    rec.add_event(moved["t_up"], "state", node="r2", state="master")
    for e in events_from_observer(moved["events"], {"p-r1": "r1", "p-r2": "r2"}, [VMAC]):
        rec.add_event(**e)
    assert [e["node"] for e in rec.events_of("garp")] == ["r2"]
    assert rec.events_of("fdb")[-1]["node"] == "r2"
    back = RunRecord.load(rec.save(str(tmp_path / "run.json")))
    assert back == rec and back.outage_ms == moved["summary"].outage_ms
    png = plot_timeline(back, str(tmp_path / "run.png"))
    with open(png, "rb") as fh:
        assert fh.read(4) == b"\x89PNG"
