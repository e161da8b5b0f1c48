"""A frozen vmacd (SIGSTOP of the daemon for 0.5 s or 1 s, then SIGCONT; its guardian runs on),
the other router healthy, advertisements every 100 ms (Master_Down_Interval of the backup at
priority 150: 300 + 106·100/256 = 341.4 ms).

* Backup frozen: when it wakes its Master_Down timer is long overdue, but the master's
  advertisements queued in its socket say the master never went away. It must read them before it
  acts on the timer: no transition, and not one advertisement from it on the wire.
* Master frozen: the backup hears nothing for longer than Master_Down_Interval and takes over when
  its timer expires (last advertisement heard + Master_Down_Interval, no earlier); once thawed, the
  master (higher priority, preempt) is master again and the backup steps back.

Margins are generous (the machine is shared): the takeover may come up to 100 ms after the RFC
timer expires, never before it.
"""
from __future__ import annotations

import time

import pytest
from daemon_util import capture, fleet, port, sleep_observing
from vmaclab.faults import fault
from vmaclab.observe import adverts
from vmaclab.record import rfc_bounds
from vmaclab.util import wait_until

__all__ = ["fleet"]

ADVERT_MS = 100
MDI_MS = rfc_bounds(ADVERT_MS, 150)[0]
LATE_MARGIN_MS = 100.0


def _history(r) -> list[dict]:
    reply = r.control({"cmd": "history"})
    assert reply is not None, f"{r.node}: no answer on the control socket"
    return reply["history"]


def _freeze(lab, r, seconds: float) -> tuple[int, int]:
    """SIGSTOP *r*'s daemon for *seconds*; (freeze, thaw) as monotonic ns."""
    done = fault(lab, r, "freeze")
    assert done["pids"] == [r.pids()["vmacd"]], done         # the daemon only, not its guardian
    time.sleep(max(0.0, done["t"] + seconds - time.monotonic()))
    thawed = fault(lab, r, "thaw")
    return int(done["t"] * 1e9), int(thawed["t"] * 1e9)


def _pair_observed(fleet) -> tuple:
    """r1 (200) master, r2 (150) backup, the LAN captured; (lab, r1, r2, observer, histories)."""
    lab = fleet.lab
    rs = fleet.elect([("r1", 200), ("r2", 150)], master="r1")
    r1, r2 = rs["r1"], rs["r2"]
    obs = capture(fleet)
    sleep_observing(0.5)
    return lab, r1, r2, obs, (_history(r1), _history(r2))


@pytest.mark.parametrize("freeze_s", [0.5, 1.0])
def test_frozen_backup_wakes_as_backup(fleet, freeze_s: float) -> None:
    lab, r1, r2, obs, before = _pair_observed(fleet)

    t_freeze, t_thaw = _freeze(lab, r2, freeze_s)
    sleep_observing(1.0)                   # ten more adverts of r1 after the thaw
    events = obs.stop()

    after = (_history(r1), _history(r2))
    from_r2 = [e for e in adverts(events) if e["ifname"] == port(lab, "r2") and e["t_ns"] >= t_freeze]
    from_r1 = [e for e in adverts(events) if e["ifname"] == port(lab, "r1") and e["t_ns"] >= t_freeze]
    print(f"\nbackup frozen {(t_thaw - t_freeze) / 1e6:.0f} ms: r2 sent {len(from_r2)} adverts, "
          f"r1 sent {len(from_r1)}; transitions r1 {len(after[0]) - len(before[0])}, "
          f"r2 {len(after[1]) - len(before[1])}")
    assert len(from_r1) >= (freeze_s + 1.0) * 1000 / ADVERT_MS * 0.8, "the capture lost r1's adverts"
    assert not from_r2, f"the thawed backup advertised: {from_r2[:3]}"
    assert after == before, f"transitions: {after[1][len(before[1]):]} {after[0][len(before[0]):]}"
    assert (r1.state(), r2.state()) == ("master", "backup")


@pytest.mark.parametrize("freeze_s", [0.5, 1.0])
def test_frozen_master_is_replaced_when_the_timer_expires(fleet, freeze_s: float) -> None:
    lab, r1, r2, obs, before = _pair_observed(fleet)

    t_freeze, t_thaw = _freeze(lab, r1, freeze_s)
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5.0,
               what="r1 master and r2 backup again after the thaw")
    sleep_observing(1.0)
    events = obs.stop()

    last = [e for e in adverts(events) if e["ifname"] == port(lab, "r1") and e["t_ns"] <= t_freeze
            and e["priority"] > 0]
    first = [e for e in adverts(events) if e["ifname"] == port(lab, "r2") and e["t_ns"] >= t_freeze]
    assert last and first, "no advert of r1 before the freeze, or none of r2 after it"
    waited = (first[0]["t_ns"] - last[-1]["t_ns"]) / 1e6
    r1_new, r2_new = _history(r1)[len(before[0]):], _history(r2)[len(before[1]):]
    print(f"\nmaster frozen {(t_thaw - t_freeze) / 1e6:.0f} ms: r2's first advert {waited:.1f} ms "
          f"after r1's last (MDI {MDI_MS:.1f}); r2: {[h['to'] for h in r2_new]}, "
          f"r1: {[h['to'] for h in r1_new]}")
    assert first[0]["t_ns"] < t_thaw, "r2 took over only after the thaw"
    assert MDI_MS - 2 <= waited <= MDI_MS + LATE_MARGIN_MS, waited
    assert [h["to"] for h in r2_new] == ["master", "backup"], r2_new
    assert r1_new == [], f"the thawed master changed state: {r1_new}"
