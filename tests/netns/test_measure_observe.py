"""Observer (AF_PACKET capture), FDB watcher and frame decoding on a real bridge."""
from __future__ import annotations

import struct
import time

import pytest
from measure_util import (
    MiniLan,
    garp_frame,
    mac_bytes,
    send_frames_timed,
    vrrp_frame,
    wait_for,
)
from vmaclab.observe import (
    FdbWatcher,
    Observer,
    adverts,
    bridge_ports,
    decode_frame,
    fdb_moves,
    first_advert,
    frames_from_mac,
    last_advert,
)

pytestmark = pytest.mark.timeout(60)
PROBE_MAC = "02:00:5e:aa:bb:cc"


@pytest.fixture(scope="module")
def lan():
    net = MiniLan().up()
    try:
        yield net
    finally:
        net.down()


def test_observer_timestamps_frames_with_a_chosen_source_mac(lan, tmp_path):
    br = lan.ns("br")
    assert sorted(bridge_ports(br, "br0")) == ["p-c", "p-r1", "p-r2"]
    obs = Observer.start(br, ["p-r1", "p-c"], str(tmp_path / "obs.jsonl"))
    try:
        windows = send_frames_timed(lan.ns("r1"), "eth0", [vrrp_frame(PROBE_MAC, "192.0.2.1", 51, 200)] * 4,
                                    gap_s=0.02)
        wait_for(lambda: len(frames_from_mac(obs.events(), PROBE_MAC, direction=None)) >= 8, 3, "8 frames")
    finally:
        events = obs.stop()
    rx = frames_from_mac(events, PROBE_MAC, ifname="p-r1")          # entering the bridge from r1
    tx = frames_from_mac(events, PROBE_MAC, ifname="p-c", direction="tx")  # flooded to the client
    assert len(rx) == 4 and len(tx) == 4
    for frame, (before, after) in zip(rx, windows, strict=True):
        # kernel receive stamp on the bridge port falls inside the sender's send() call
        assert before <= frame["t_ns"] <= after, (before, frame["t_ns"], after)
        assert frame["ts"] == "kernel"
        assert (frame["kind"], frame["version"], frame["vrid"], frame["priority"]) == ("vrrp", 3, 51, 200)
        assert (frame["src_ip"], frame["dst_ip"], frame["ttl"], frame["interval_ms"]) == (
            "192.0.2.1", "224.0.0.18", 255, 100)
    assert last_advert(events, src_mac=PROBE_MAC)["t_ns"] == rx[-1]["t_ns"]
    assert first_advert(events, after_ns=rx[0]["t_ns"] + 1, src_mac=PROBE_MAC)["t_ns"] == rx[1]["t_ns"]
    assert frames_from_mac(events, PROBE_MAC, after_ns=windows[-1][1] + 1) == []
    assert adverts(events, vrid=52) == []


def test_rx_only_capture_drops_frames_the_bridge_sends_out(lan, tmp_path):
    """--rx-only: frames sent by the node behind a port are kept, frames flooded to it are not
    (the flood case of ``bench faults`` must not drown its own capture)."""
    br = lan.ns("br")
    obs = Observer.start(br, ["p-r1", "p-c"], str(tmp_path / "obs.jsonl"), rx_only=True)
    try:
        send_frames_timed(lan.ns("r1"), "eth0", [vrrp_frame(PROBE_MAC, "192.0.2.1", 51, 200)] * 3,
                          gap_s=0.01)
        wait_for(lambda: len(frames_from_mac(obs.events(), PROBE_MAC, direction=None)) >= 3, 3,
                 "3 frames")
        time.sleep(0.2)
    finally:
        events = obs.stop()
    got = frames_from_mac(events, PROBE_MAC, direction=None)
    assert [(e["ifname"], e["dir"]) for e in got] == [("p-r1", "rx")] * 3


def test_fdb_watcher_sees_a_mac_move_between_ports(lan, tmp_path):
    mac = "02:00:5e:00:77:01"
    w = FdbWatcher.start(lan.ns("br"), "br0", str(tmp_path / "fdb.jsonl"))
    try:
        (b1, t1), = send_frames_timed(lan.ns("r1"), "eth0", [garp_frame(mac, "192.0.2.77")])
        wait_for(lambda: fdb_moves(w.events(), mac), 3, "first learning")
        (b2, t2), = send_frames_timed(lan.ns("r2"), "eth0", [garp_frame(mac, "192.0.2.77")])
        wait_for(lambda: len(fdb_moves(w.events(), mac)) >= 2, 3, "the move")
    finally:
        events = w.stop()
    moves = fdb_moves(events, mac)
    assert [(m["from"], m["to"]) for m in moves] == [(None, "p-r1"), ("p-r1", "p-r2")]
    assert b1 <= moves[0]["t_ns"] <= t1 + 50_000_000  # netlink event read after the frame left
    assert b2 <= moves[1]["t_ns"] <= t2 + 50_000_000
    assert any(e["event"] == "dump" and e["permanent"] for e in events)  # initial table was read


def _eth(src: str, etype: int, body: bytes) -> bytes:
    return b"\x01\x00\x5e\x00\x00\x12" + mac_bytes(src) + struct.pack("!H", etype) + body


def test_decode_vrrp_v2_in_ah_and_unsolicited_na():
    vrrp2 = bytes([0x21, 7, 100, 1, 2, 1, 0, 0]) + bytes([192, 0, 2, 254]) + b"\0" * 8
    ah = bytes([112, 4, 0, 0]) + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01" + b"\0" * 12
    ip = bytes([0x45, 0, 0, 20 + len(ah) + len(vrrp2), 0, 0, 0, 0, 255, 51, 0, 0,
                192, 0, 2, 1, 224, 0, 0, 18])
    d = decode_frame(_eth("00:00:5e:00:01:07", 0x0800, ip + ah + vrrp2))
    assert (d["kind"], d["ah"], d["version"], d["vrid"], d["priority"], d["interval_ms"]) == (
        "vrrp", True, 2, 7, 100, 1000)
    target = bytes.fromhex("20010db8000000000000000000000001")
    na = bytes([136, 0, 0, 0, 0x20, 0, 0, 0]) + target
    ip6 = bytes([0x60, 0, 0, 0, 0, len(na), 58, 255]) + target + bytes.fromhex("ff02" + "00" * 13 + "01")
    d = decode_frame(_eth("00:00:5e:00:02:07", 0x86DD, ip6 + na))
    assert (d["kind"], d["target"], d["override"], d["solicited"]) == ("na", "2001:db8::1", True, False)
    d = decode_frame(garp_frame("00:00:5e:00:01:07", "192.0.2.254"))
    assert (d["kind"], d["gratuitous"], d["src_ip"], d["op"]) == ("arp", True, "192.0.2.254", 1)
    assert decode_frame(_eth("02:00:00:00:00:09", 0x88CC, b"\0" * 46))["kind"] == "other"
    assert time.monotonic_ns() > 0
