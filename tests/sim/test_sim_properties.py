"""Hypothesis property tests over random fault schedules on the virtual LAN.

Examples per property: env VMACD_SIM_EXAMPLES (default 200; CI: 2000). Derandomized, so a run is
reproducible; a failing schedule is printed one operation per line (Scenario.__repr__), and an
invariant failure also prints the last 25 trace lines.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from simnet import NodeSpec, Sim, make_params

from vmacd.core import timers
from vmacd.core.events import LinkChanged, Maintenance, Shutdown, Startup, TrackChanged
from vmacd.core.fsm import State

EXAMPLES = int(os.environ.get("VMACD_SIM_EXAMPLES", "200"))
SETTINGS = {"deadline": None, "derandomize": True, "database": None, "print_blob": False,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
NAMES = ("r1", "r2", "r3", "r4")


@dataclass(frozen=True)
class Box:
    name: str
    prios: tuple[int, ...]            # one per VRID
    preempt: bool
    handover: str
    preempt_delay: float
    startup_delay: float
    sync_group: bool


@dataclass(frozen=True)
class Op:
    t: float
    kind: str
    node: str
    vrid: int = 0
    arg: object = None

    def __str__(self) -> str:
        where = f"{self.node}" + (f"/vrid{self.vrid}" if self.vrid else "")
        return f"t={self.t:7.2f}s {self.kind:9} {where} {'' if self.arg is None else self.arg}"


@dataclass(frozen=True)
class Scenario:
    boxes: tuple[Box, ...]
    vrids: tuple[int, ...]
    interval_cs: int
    delay: float
    jitter: float
    horizon: float
    ops: tuple[Op, ...]

    def __repr__(self) -> str:
        lines = [(f"Scenario: VRIDs {self.vrids}, interval {self.interval_cs} cs, delay "
                  f"{self.delay}s (+{self.jitter}s jitter), faults until {self.horizon}s")]
        lines += [f"  {b}" for b in self.boxes] + [f"  {op}" for op in self.ops]
        return "\n".join(lines)

    def build(self, seed: int = 1) -> Sim:
        specs = []
        for i, b in enumerate(self.boxes):
            params = {v: make_params(i + 1, v, priority=p, interval_cs=self.interval_cs,
                                     preempt=b.preempt, graceful_handover=b.handover,
                                     preempt_delay=b.preempt_delay, startup_delay=b.startup_delay)
                      for v, p in zip(self.vrids, b.prios, strict=True)}
            specs.append(NodeSpec(b.name, i + 1, params, sync_group=b.sync_group))
        return Sim(specs, delay=self.delay, jitter=self.jitter, seed=seed)


@st.composite
def scenarios(draw, faults: bool = True, groups: bool = True) -> Scenario:
    n = draw(st.integers(2, 4))
    vrids = draw(st.sampled_from([(1,), (1, 2)]))
    owners = {v: draw(st.sampled_from((None,) + NAMES[:n])) for v in vrids}
    interval = draw(st.sampled_from([20, 100]))
    boxes = []
    for name in NAMES[:n]:
        prios = tuple(255 if owners[v] == name else draw(st.integers(1, 254)) for v in vrids)
        boxes.append(Box(name, prios, draw(st.booleans()),
                         draw(st.sampled_from(["make-before-break", "rfc"])),
                         draw(st.sampled_from([0.0, 0.0, 1.5])),
                         draw(st.sampled_from([0.0, 0.0, 2.0])),
                         groups and len(vrids) > 1 and draw(st.booleans())))
    horizon = 12.0 * interval / 100 + 4.0
    ops: list[Op] = []
    if faults:
        kinds = st.sampled_from(["crash", "restart", "shutdown", "start", "partition", "heal",
                                 "loss", "track", "link", "maint"])
        for _ in range(draw(st.integers(0, 12))):
            t = draw(st.integers(0, int(horizon * 100))) / 100
            kind, node = draw(kinds), draw(st.sampled_from(NAMES[:n]))
            vrid = draw(st.sampled_from(vrids))
            arg = {"partition": lambda: tuple(sorted(draw(st.sets(st.sampled_from(NAMES[:n]))))),
                   "loss": lambda: draw(st.sampled_from([0.2, 0.5, 1.0])),
                   "track": lambda: (draw(st.sampled_from("ab")), draw(st.booleans()),
                                     draw(st.sampled_from([-60, -20, 0, 30]))),
                   "link": lambda: draw(st.booleans()),
                   "maint": lambda: draw(st.booleans())}.get(kind, lambda: None)()
            ops.append(Op(t, kind, node, vrid, arg))
    delay = draw(st.sampled_from([0.0, 0.001, 0.03]))
    jitter = draw(st.sampled_from([0.0, delay]))
    return Scenario(tuple(boxes), vrids, interval, delay, jitter, horizon,
                    tuple(sorted(ops, key=lambda o: o.t)))


def apply(sim: Sim, op: Op) -> None:
    node = sim.nodes[op.node]
    r = node.routers.get(op.vrid) if node.alive else None
    if op.kind == "crash":
        sim.crash(op.node)
    elif op.kind == "restart":
        sim.restart(op.node)
    elif op.kind == "shutdown" and r is not None and r.state is not State.STOPPED:
        sim.feed(op.node, op.vrid, Shutdown("schedule"))
    elif op.kind == "start" and r is not None and r.state in (State.INIT, State.STOPPED):
        sim.feed(op.node, op.vrid, Startup())
    elif op.kind == "partition":
        sim.partition = dict.fromkeys(op.arg, 1)
    elif op.kind == "heal":
        sim.partition, sim.loss = {}, 0.0
    elif op.kind == "loss":
        sim.loss = op.arg
    elif op.kind == "track":
        name, up, weight = op.arg
        sim.feed(op.node, op.vrid, TrackChanged(name, up, weight))
    elif op.kind == "link":
        sim.feed_all(op.node, LinkChanged(op.arg))
    elif op.kind == "maint":
        sim.feed(op.node, op.vrid, Maintenance(op.arg))


def heal_everything(sim: Sim) -> None:
    """End of the fault window: network whole, links up, no maintenance, every box running."""
    sim.partition, sim.loss = {}, 0.0
    for name, node in sim.nodes.items():
        if not node.alive:
            sim.restart(name)
            continue
        sim.feed_all(name, LinkChanged(True))
        for vrid, r in list(node.routers.items()):
            sim.feed(name, vrid, Maintenance(False))
            if r.state in (State.INIT, State.STOPPED):
                sim.feed(name, vrid, Startup())


def settle_time(sc: Scenario) -> float:
    worst = max(b.startup_delay + b.preempt_delay for b in sc.boxes)
    return worst + 4 * timers.seconds(timers.handover_bound_cs(sc.interval_cs)) + 10 * (sc.delay + sc.jitter)


def check_converged(sim: Sim, sc: Scenario) -> None:
    for vrid in sc.vrids:
        live = [(n, node.routers[vrid]) for n, node in sim.nodes.items()
                if node.alive and vrid in node.routers]
        eligible = [(n, r) for n, r in live
                    if r.state in (State.BACKUP, State.MASTER) and not r.maintenance]
        masters = [n for n, r in live if r.state is State.MASTER]
        assert len(masters) == (1 if eligible else 0), (vrid, masters, [
            (n, r.state.value, r.effective_priority) for n, r in live])
        assert not any(r.leaving for _, r in live)
        if any(b.sync_group for b in sc.boxes) or not eligible:
            continue
        top = max(r.effective_priority for _, r in eligible)
        best = [(n, r) for n, r in eligible if r.effective_priority == top]
        if len(best) == 1 and (best[0][1].params.preempt or best[0][1].params.owner):
            assert masters == [best[0][0]], (vrid, masters, best[0][0], top)


@pytest.mark.rfc("9568-6.4.2-5", "refused")      # no VIP on a backup, whatever the faults
@pytest.mark.rfc("9568-5.2.4-3", "refused")      # priority 0 only from a leaving master
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(scenarios())
def test_random_faults_then_heal_gives_one_master_and_the_best(sc: Scenario):
    note(repr(sc))
    sim = sc.build()
    sim.at(0.0, sim.start_all)
    for op in sc.ops:
        sim.at(op.t, lambda op=op: apply(sim, op), str(op))
    sim.run_until(sc.horizon)
    heal_everything(sim)
    sim.run_until(sc.horizon + settle_time(sc))
    note("\n".join(f"{x.time:9.4f} {x.node} vrid{x.vrid} {x.what}" for x in sim.trace[-30:]))
    check_converged(sim, sc)


SMALL = max(25, EXAMPLES // 8)


def _stable(sc: Scenario) -> tuple[Sim, float]:
    note(repr(sc))
    sim = sc.build()
    sim.at(0.0, sim.start_all)
    t = sc.horizon + settle_time(sc)
    sim.run_until(t)
    check_converged(sim, sc)
    return sim, t


@pytest.mark.rfc("9568-6.1-7", "holds")
@settings(max_examples=SMALL, **SETTINGS)
@given(scenarios(faults=False, groups=False), st.floats(0.0, 1.0))
def test_master_crash_backup_takes_over_within_down_interval(sc: Scenario, phase: float):
    sim, t = _stable(sc)
    vrid = sc.vrids[0]
    [old] = sim.masters(vrid)
    t_crash = t + phase * sc.interval_cs / 100
    backups = [n for n in sim.nodes if n != old]
    bound = t_crash + sc.delay + sc.jitter + max(sim.mdi(n, vrid) for n in backups) + 1e-9
    sim.at(t_crash, lambda: sim.crash(old))
    sim.run_until(bound + 5.0)
    claim = sim.first_claim_after(vrid, t_crash)
    assert claim is not None and t_crash < claim.time <= bound, (claim, t_crash, bound)


@pytest.mark.rfc("9568-6.4.2-12", "holds")
@settings(max_examples=SMALL, **SETTINGS)
@given(scenarios(faults=False, groups=False))
def test_priority_zero_release_hands_over_within_skew(sc: Scenario):
    sim, t = _stable(sc)
    vrid = sc.vrids[0]
    [old] = sim.masters(vrid)
    backups = [n for n in sim.nodes if n != old]
    best = max(sim.nodes[n].routers[vrid].effective_priority for n in backups)
    skew = timers.seconds(timers.skew_time_cs(best, sc.interval_cs))
    sim.at(t, lambda: sim.feed(old, vrid, Shutdown()))
    sim.run_until(t + 10.0)
    claim = sim.first_claim_after(vrid, t, exclude=old)
    assert claim is not None and claim.time <= t + sc.delay + sc.jitter + skew + 1e-9
    if sim.nodes[old].routers[vrid].params.graceful_handover == "make-before-break":
        release = next(x for x in sim.trace if x.node == old and x.what == "release" and x.time >= t)
        assert release.time >= claim.time                    # no instant without a holder


@settings(max_examples=SMALL, **SETTINGS)
@given(scenarios(faults=False, groups=False), st.integers(1, 254))
def test_without_preempt_a_live_master_is_not_displaced(sc: Scenario, prio: int):
    sim, t = _stable(sc)
    vrid = sc.vrids[0]
    [old] = sim.masters(vrid)
    node = sim.nodes[old]
    joiner = NodeSpec("r9", 9, {vrid: make_params(9, vrid, priority=prio, preempt=False,
                                                  interval_cs=sc.interval_cs)})
    from simnet import Node
    sim.nodes["r9"] = Node(joiner, sim._fresh(joiner), alive=False)
    sim.at(t, lambda: sim.restart("r9"))
    sim.run_until(t + 20 * sc.interval_cs / 100 + 5)
    assert sim.masters(vrid) == [old] and node.routers[vrid].state is State.MASTER
