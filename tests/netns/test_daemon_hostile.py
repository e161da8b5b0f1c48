"""Hostile packets ("a dropped packet changes nothing but its drop counter", docs/operations.md).
The attacker node sends five kinds of broken advertisements, each at the advert rate
(10/s) with priority 250, to a backup (r2, 100) while its master (r1, 200) is crashed. Every one
is counted by reason in vmacd_packets_dropped_total and none restarts the backup's
Master_Down_Timer: it takes over within the normal bound while the flood still runs
(keepalived 2.2.7 restarts its timers on rejected packets and stays silent until it stops).
"""
from __future__ import annotations

import threading
import time

import pytest
from daemon_util import failover_bound_s, fleet, metric_value, metrics_text, node_mac
from vmaclab import attacker
from vmaclab.faults import fault
from vmaclab.util import wait_until

__all__ = ["fleet"]
TOPO = "trio"
FLOOD_S = 6.0
RATE = 10.0

# reason -> attacker fields (everything else a valid VRRPv3 advert for VRID 51 at priority 250)
ATTACKS = {
    "ttl": {"ttl": 64},
    "checksum": {"checksum": "0x1234"},
    "vrid": {"vrid": 99},
    "addresses": {"addresses": []},
    "interval": {"interval_cs": 0},
}


def _dropped(lab, reason: str) -> float:
    return metric_value(metrics_text(lab, "r2"), "vmacd_packets_dropped_total", reason=reason)


@pytest.mark.rfc("9568-7.1-7", "refused")         # VRID 99 is configured nowhere: dropped, "vrid"
@pytest.mark.rfc("9568-7.1-9", "refused")         # no dropped kind restarts the down timer
def test_broken_adverts_are_counted_and_do_not_hold_back_the_backup(fleet) -> None:
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    base = {reason: _dropped(lab, reason) for reason in ATTACKS}
    mac = node_mac(lab, "x1")            # its own MAC: the bridge FDB for the vMAC stays honest
    sent: dict[str, dict] = {}
    errors: list[BaseException] = []

    def flood(reason: str, fields: dict) -> None:
        kw = {"vrid": 51, "priority": 250, "rate": RATE, "duration": FLOOD_S, "mac": mac, **fields}
        try:
            sent[reason] = attacker.send(lab, "x1", "lan", **kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=flood, args=item, daemon=True) for item in ATTACKS.items()]
    for t in threads:
        t.start()
    # every kind is arriving (the attackers import scapy first), the flood has seconds to run
    wait_until(lambda: errors or all(_dropped(lab, r) > base[r] for r in ATTACKS), 10.0,
               interval=0.1, what="every kind of broken advert counted on r2")
    assert not errors, errors
    assert (r1.state(), r2.state()) == ("master", "backup")
    done = fault(lab, r1, "crash")
    wait_until(lambda: r2.state() == "master", FLOOD_S, interval=0.005,
               what="r2 master while the flood goes on")
    took = time.monotonic() - done["t"]
    for t in threads:
        t.join(FLOOD_S + 40)
    assert not errors, errors
    got = {reason: _dropped(lab, reason) - base[reason] for reason in ATTACKS}
    print(f"\nhostile: r2 master {took * 1000:.0f} ms after the crash under the flood; "
          f"dropped {got}; sent {({r: s['sent'] for r, s in sent.items()})}")
    assert took < failover_bound_s(100), took
    assert all(sent[r]["sent"] >= RATE * FLOOD_S * 0.8 for r in ATTACKS), sent
    # every broken advert that reached r2 was counted under its reason (r2 saw all of them:
    # one LAN, no loss), and nothing else was
    assert got == {r: float(sent[r]["sent"]) for r in ATTACKS}, (got, sent)
    assert r2.proc.poll() is None and r2.state() == "master"
