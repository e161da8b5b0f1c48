"""One failover scenario: topology up, impl on N routers, election, prober + observers, fault on
the master, wait for a new master, collect a RunRecord (JSON + PNG), tear down.

A scenario file (netns-lab/scenarios/*.toml) holds the ``Scenario`` fields, e.g.::

    topology = "trio"
    impl = "keepalived"
    event = "crash"
    advert_ms = 100
"""
from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import impls
from .faults import fault
from .impls.base import Router
from .lab import Lab
from .topology import resolve
from .util import log, parse_duration_ms, wait_until


@dataclass
class Scenario:
    """What to run; priorities descend from ``top_priority`` in steps of ``priority_step``."""
    topology: str = "pair"
    impl: str = "keepalived"
    event: str = "crash"
    advert_ms: int = 100
    version: int = 3
    vrid: int = 51
    vmac: bool = True
    lan: str = "lan"
    top_priority: int = 200
    priority_step: int = 50
    probe_ms: float = 5.0
    before_ms: int = 300        # probing before the fault
    after_ms: int = 500         # probing after the new master appeared
    timeout_s: float = 10.0     # for election and for the new master
    observe: bool = True
    run: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: object) -> Scenario:
        """Load a scenario TOML; *overrides* (impl, event, advert_ms...) win over the file."""
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data.update(overrides)
        if "advert_ms" in data:
            data["advert_ms"] = parse_duration_ms(data["advert_ms"])
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown scenario keys {sorted(unknown)}")
        return cls(**data)


def _start_routers(lab: Lab, sc: Scenario) -> list[Router]:
    rs = []
    for i, node in enumerate(lab.topo.routers()):
        prio = sc.top_priority - i * sc.priority_step
        r = impls.get(sc.impl)().configure(lab, node, sc.lan, sc.vrid, lab.vip(sc.lan), prio,
                                           sc.advert_ms, version=sc.version, vmac=sc.vmac,
                                           **sc.extra)
        r.start()
        rs.append(r)
    wait_until(lambda: [r.state() for r in rs] == ["master"] + ["backup"] * (len(rs) - 1),
               sc.timeout_s, what=f"{sc.impl} election")
    return rs


def _new_master(rs: list[Router], old: Router) -> Router | None:
    for r in rs:
        if r is not old and r.state() == "master":
            return r
    return None


def run(sc: Scenario, out_dir: Path | None = None) -> dict:
    """Run *sc* once; returns the record dict (RunRecord.to_dict()), saved under *out_dir*."""
    from .observe import Observer
    from .prober import EchoServer, Prober
    from .record import RunRecord, events_from_observer
    lab = Lab(resolve(sc.topology))
    with lab:
        rs = _start_routers(lab, sc)
        old = rs[0]
        backup_prio = sc.top_priority - sc.priority_step
        rec = RunRecord(impl=sc.impl, event=sc.event, advert_ms=sc.advert_ms, run=sc.run,
                        backup_priority=backup_prio, old_master=old.node,
                        nodes=[r.node for r in rs], meta={"prefix": lab.prefix, "vrid": sc.vrid,
                                                          "version": sc.version,
                                                          "vip": lab.vip(sc.lan),
                                                          "priorities": {r.node: r.cfg.priority
                                                                         for r in rs}})
        client = lab.topo.clients()[0]
        echoes = [EchoServer.start(lab.ns(r.node), r.node) for r in rs]
        obs = None
        if sc.observe:
            ports = [lab.bridge_port(n, sc.lan) for n in lab.topo.members(sc.lan)]
            obs = Observer.start(lab.bridge_ns(sc.lan), ports,
                                 str(lab.workdir(client) / "observe.jsonl"),
                                 fdb_bridge=lab.bridge(sc.lan))
        prober = Prober.start(lab.ns(client), lab.vip(sc.lan), interval_ms=sc.probe_ms,
                              out_path=str(lab.workdir(client) / "probes.jsonl"))
        t_start = time.monotonic()
        wait_until(lambda: time.monotonic() - t_start >= sc.before_ms / 1000, 5.0, what="baseline")
        done = fault(lab, old, sc.event)
        rec.add_fault(int(done["t"] * 1e9), old.node, sc.event)
        new = None
        try:
            new = wait_until(lambda: _new_master(rs, old), sc.timeout_s, interval=0.005,
                             what="a new master")
        except TimeoutError as exc:
            log.warning("%s", exc)
        t_new = time.monotonic()
        wait_until(lambda: time.monotonic() - t_new >= sc.after_ms / 1000, 5.0, what="tail")
        rec.probe = prober.stop().to_dict()
        rec.new_master = new.node if new else None
        if obs is not None:
            port_node = {lab.bridge_port(n, sc.lan): n for n in lab.topo.members(sc.lan)}
            vmac = rs[0].cfg.vmac_addr
            try:
                captured = obs.stop()
            except RuntimeError as exc:   # keep the measurement even when the capture died
                log.warning("observer: %s", exc)
                rec.meta["observer_error"] = str(exc).splitlines()[-1]
                captured = []
            for e in events_from_observer(captured, port_node, [vmac]):
                rec.add_event(e.pop("t_ns"), e.pop("kind"), **e)
            if new is not None:
                rec.meta["old_vmac_after"] = _old_vmac_after(captured, lab, sc.lan, old, new,
                                                             vmac, rec.fault_ns)
        for echo in echoes:
            echo.stop()
        for r in rs:
            for t, state in r.history:
                rec.add_event(int(t * 1e9), "state", node=r.node, state=state)
        if new is None:
            rec.probe["outage_ms"] = None
    return _save(rec, sc, out_dir)


def _old_vmac_after(captured: list[dict], lab: Lab, lan: str, old: Router, new: Router, vmac: str,
                    fault_ns: int) -> int | None:
    """Frames the old master's box sent from the vMAC after the new master's first advertisement
    (None when no advertisement of the new master was captured)."""
    from .observe import adverts, frames_from_mac
    firsts = [e for e in adverts(captured) if e["ifname"] == lab.bridge_port(new.node, lan)
              and e["t_ns"] >= fault_ns]
    if not firsts:
        return None
    return len(frames_from_mac(captured, vmac, after_ns=firsts[0]["t_ns"],
                               ifname=lab.bridge_port(old.node, lan)))


def _save(rec, sc: Scenario, out_dir: Path | None) -> dict:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = out_dir / f"{sc.impl}-{sc.event}-{sc.advert_ms}ms-run{sc.run}"
        rec.meta["json"] = str(stem.with_suffix(".json"))
        try:
            from .plot import plot_timeline
            plot_timeline(rec, str(stem.with_suffix(".png")))
            rec.meta["png"] = str(stem.with_suffix(".png"))
        except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the measurement
            log.warning("plot failed: %s", exc)
        rec.save(str(stem.with_suffix(".json")))
    return rec.to_dict()


def run_file(path: Path, out_dir: Path | None = None, **overrides: object) -> dict:
    """Load a scenario file and run it."""
    return run(Scenario.from_file(path, **overrides), out_dir)


def summary_line(rec: dict) -> str:
    """One human line: impl, event, outage vs MDI, lost probes, masters."""
    outage = "n/a" if rec.get("outage_ms") is None else f"{rec['outage_ms']:.1f} ms"
    return (f"{rec['impl']} {rec['event']} advert {rec['advert_ms']} ms: outage {outage} "
            f"(RFC MDI {rec['mdi_ms']:.0f} ms), lost {rec.get('lost')}, "
            f"{rec['old_master']} -> {rec['new_master']}")
