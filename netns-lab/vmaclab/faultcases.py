"""The rows of ``vmac-lab bench faults``: each case injects its faults into a running ``Bed`` and
returns one row per measured window (see docs/benchmarks.md, "Fault matrix", for each figure).

A row holds ``case``, the client's figures of its window (``sent``, ``lost``, ``outage_ms``: the
longest time without an answer), ``transitions`` per router (state changes the daemons reported),
the case's own figures, ``invariant`` (text, None when the case only reports) and ``held``.
"""
from __future__ import annotations

import math
import re
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from .faultbed import PRIORITIES, Bed
from .faults import counters, fault
from .impls.base import Router
from .util import kill, wait_until

#: "the client loses at most a few probes" when a frozen master comes back (5 ms probes)
FEW_PROBES = 5
#: what each reload changes and where, one after the other (cumulative); "both": the backup
#: first, then the master ROLL_S later, as a rolling change of a VIP list or interval is made
RELOADS = (("same", "both"), ("vips", "both"), ("priority", "master"), ("interval", "both"),
           ("broken", "master"))
ROLL_S = 1.0
FREEZE_BACKUP_S = (0.5, 1.0)
FLOOD_VRID, FLOOD_SPREAD = 52, 200          # VRIDs 52..251: not ours (51)
EXTRA_VIP = "192.0.2.253/24"


@dataclass
class Options:
    """Knobs of the bench (CLI flags)."""
    duration_s: float = 600.0       # loss rows
    restarts: int = 5
    flood_pps: float = 20000.0
    flood_s: float = 5.0


def _now() -> float:
    return time.monotonic()


def _row(bed: Bed, case: str, t0: float, t1: float, transitions: dict | None = None,
         invariant: str | None = None, held: bool | None = None, **figures: object) -> dict:
    return {"case": case, **bed.probes(t0, t1),
            "transitions": transitions if transitions is not None else bed.transitions(t0, t1),
            "invariant": invariant, "held": held, **figures}


def _ms(t_ns: int | None, t0_s: float | None) -> float | None:
    """Milliseconds from *t0_s* (monotonic seconds) to *t_ns* (monotonic ns)."""
    if t_ns is None or t0_s is None:
        return None
    return round((t_ns - t0_s * 1e9) / 1e6, 1)


# -- random loss -------------------------------------------------------------------------------------
def rfc_takeovers(p: float, advert_ms: float, mdi_ms: float, seconds: float) -> float:
    """Takeovers an RFC 9568 backup makes in *seconds* when each advertisement is lost with
    probability *p*: after a received advert, the next ceil(MDI/I) - 1 must all be lost."""
    k = math.ceil(mdi_ms / advert_ms) - 1
    return seconds * 1000 / advert_ms * (1 - p) * p ** k


def loss(pct: int) -> Callable[[Bed, Options], list[dict]]:
    def case(bed: Bed, opt: Options) -> list[dict]:
        t0 = fault(bed.lab, None, "loss", percent=pct)["t"]
        bed.hold(opt.duration_s)
        drops = sum(c["packets"] for c in counters(bed.lab, "lan").values())
        t1 = fault(bed.lab, None, "heal")["t"]
        bed.settle()                       # a takeover in flight at the heal still counts
        end = _now()
        bed.finish()
        tr = bed.transitions(t0, end)
        take = bed.transitions(t0, end, into="master")[bed.backup.node]
        per10 = 600 / opt.duration_s
        rfc = rfc_takeovers(pct / 100, bed.advert_ms, bed.mdi_ms, opt.duration_s)
        inv = "0 false transitions" if pct <= 10 else None
        return [_row(bed, f"loss {pct}%", t0, t1, tr, inv,
                     sum(tr.values()) == 0 if inv else None, seconds=round(t1 - t0, 1),
                     false_per_10min=round(sum(tr.values()) * per10, 2),
                     takeovers_per_10min=round(take * per10, 2),
                     wire_takeovers_per_10min=round(bed.bursts(bed.backup.node, t0, end) * per10, 2),
                     rfc_takeovers_per_10min=round(rfc * per10, 2), dropped=drops)]
    return case


# -- partition + heal --------------------------------------------------------------------------------
def _loser(bed: Bed) -> tuple[Router, Router]:
    """(winner, loser) by the states at the end (r1 wins when nothing settled)."""
    states = bed.states()
    if states == ["backup", "master"]:
        return bed.backup, bed.master
    return bed.master, bed.backup


def partition(bed: Bed, opt: Options) -> list[dict]:
    r1, r2 = bed.master, bed.backup
    t0 = fault(bed.lab, r1, "partition", a=[r1.node], b=[r2.node, "c1", "x1"])["t"]
    split = bed.wait_state(r2, "master", 3 * bed.mdi_ms / 1000 + 2) is not None \
        and r1.state() == "master"
    bed.hold(t0 + max(1.0, 3 * bed.mdi_ms / 1000) - _now())
    th = _now()
    fault(bed.lab, r1, "heal")
    settled = bed.settle()
    winner, loser = _loser(bed)
    bed.hold(1.0)
    end = _now()
    bed.finish()
    cross = bed.crossing(th)
    last = (bed.adverts(loser.node, th, end) or [None])[-1]
    if cross is None:                  # nothing captured crossing: no figure
        yield_ms = None
    else:                              # the loser's adverts after the first one that crossed
        yield_ms = 0.0 if last is None or last < cross else round((last - cross) / 1e6, 1)
    held = settled and yield_ms is not None and yield_ms <= bed.advert_ms
    heal = bed.probes(th, end)
    return [_row(bed, "partition + heal", t0, end, None,
                 "one master <= 1 advert interval after the first advert crosses", held,
                 both_master=split, cross_ms=_ms(cross, th),
                 two_masters_ms=0.0 if last is None else max(0.0, _ms(last, th)),
                 yield_ms=yield_ms, garps=bed.garps(winner.node, th, end),
                 garps_partition=bed.garps(r2.node, t0, th),
                 lost_heal=heal["lost"], outage_heal_ms=heal["outage_ms"], winner=winner.node)]


# -- freeze / thaw -----------------------------------------------------------------------------------
def freeze_master(bed: Bed, opt: Options) -> list[dict]:
    r1, r2 = bed.master, bed.backup
    frozen_s = math.ceil(max(1000, 3 * bed.mdi_ms) / 100) / 10     # > MDI, in 0.1 s
    t0 = fault(bed.lab, r1, "freeze")["t"]
    bed.wait_state(r2, "master", 3 * bed.mdi_ms / 1000 + 2)
    bed.hold(t0 + frozen_s - _now())
    tt = fault(bed.lab, r1, "thaw")["t"]
    settled = bed.settle()
    winner, loser = _loser(bed)
    bed.hold(1.0)
    end = _now()
    bed.finish()
    take = (bed.adverts(r2.node, t0, tt) or [None])[0]
    back = (bed.adverts(r1.node, tt, end) or [None])[0]
    last = (bed.adverts(loser.node, tt, end) or [None])[-1]
    two = 0.0 if back is None or last is None or last < back else round((last - back) / 1e6, 1)
    ret = bed.probes(tt, end)
    held = (settled and back is not None and two <= bed.advert_ms and ret["lost"] is not None
            and ret["lost"] <= FEW_PROBES)
    return [_row(bed, f"freeze master {frozen_s:g}s", t0, end, None,
                 f"stale master resolved <= 1 advert interval, <= {FEW_PROBES} probes lost at return",
                 held, takeover_ms=_ms(take, t0), back_ms=_ms(back, tt), two_masters_ms=two,
                 lost_return=ret["lost"], outage_return_ms=ret["outage_ms"], winner=winner.node)]


def freeze_backup(bed: Bed, opt: Options) -> list[dict]:
    r2 = bed.backup
    spans = []
    for secs in FREEZE_BACKUP_S:
        bed.settle()
        t0 = fault(bed.lab, r2, "freeze")["t"]
        bed.hold(secs)
        fault(bed.lab, r2, "thaw")
        bed.hold(max(1.5, 5 * bed.advert_ms / 1000))
        bed.settle()
        spans.append((secs, t0, _now()))
    bed.finish()
    rows = []
    for secs, t0, t1 in spans:
        take = bed.transitions(t0, t1, into="master")[r2.node]
        sent = len(bed.adverts(r2.node, t0, t1))
        rows.append(_row(bed, f"freeze backup {secs:g}s", t0, t1, None, "0 takeovers by the backup",
                         take == 0 and sent == 0, takeovers=take, backup_adverts=sent))
    return rows


# -- restart storm -----------------------------------------------------------------------------------
def _median(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def restart(how: str) -> Callable[[Bed, Options], list[dict]]:
    def case(bed: Bed, opt: Options) -> list[dict]:
        r1 = bed.master
        starts, settled = [], True
        for _ in range(opt.restarts):
            settled = bed.settle() and settled
            t0 = _now()
            fault(bed.lab, r1, how)                # term: graceful; kill: SIGKILL, no goodbye
            wait_until(lambda: not r1.vrrp_pids(), 15.0, what=f"{r1.node} daemon to exit")
            if how == "kill":
                bed.mark(r1.node, "stopped")
            r1.start()
            starts.append(t0)
        settled = bed.settle() and settled
        bed.hold(1.0)
        end = _now()
        bed.finish()
        per = [bed.probes(a, b) for a, b in zip(starts, starts[1:] + [end], strict=True)]
        back = [_ms(int(t * 1e9), a) if (t := bed.reported(r1.node, "master", a)) else None
                for a in starts]
        n = len(starts)
        lost = [p["lost"] for p in per]
        inv = "r1 master again after every restart" + (", 0 probes lost" if how == "term" else "")
        held = settled and None not in back and (how != "term" or sum(lost) == 0)
        return [_row(bed, f"restart {how} x{n}", starts[0], end, None, inv, held, restarts=n,
                     lost_per_restart=_median(lost),
                     outage_per_restart_ms=_median([p["outage_ms"] for p in per]),
                     back_ms=_median(back), lost_each=lost, back_each_ms=back)]
    return case


# -- interface deleted and re-created ----------------------------------------------------------------
def replug(bed: Bed, opt: Options) -> list[dict]:
    r1, r2 = bed.master, bed.backup
    t0 = _now()
    bed.lab.unplug(r1.node, "lan")
    bed.wait_state(r2, "master", 3 * bed.mdi_ms / 1000 + 2)
    bed.hold(t0 + max(1.0, 3 * bed.mdi_ms / 1000) - _now())
    tr = _now()
    bed.lab.replug(r1.node, "lan")
    back = bed.wait_state(r1, "master", 10.0) is not None
    settled = bed.settle(5.0)
    states = bed.states()
    bed.hold(1.0)
    end = _now()
    bed.finish()
    t_back = bed.reported(r1.node, "master", tr)
    unplug, rep = bed.probes(t0, tr), bed.probes(tr, end)
    master = [r.node for r, s in zip(bed.rs, states, strict=True) if s == "master"]
    return [_row(bed, "replug master iface", t0, end, None, "r1's instance back, r1 master again",
                 back and settled, back=back, back_ms=_ms(int(t_back * 1e9), tr) if t_back else None,
                 master_end="+".join(master) or "none", r1_end=states[0],
                 lost_unplug=unplug["lost"], lost_replug=rep["lost"],
                 outage_replug_ms=rep["outage_ms"])]


# -- reload under traffic ----------------------------------------------------------------------------
def config_text(r: Router, changes: set[str]) -> str:
    """*r*'s config with *changes* (see RELOADS) applied; the Router's cfg is updated for
    priority and interval so that render() writes them."""
    text = r.render()
    if "vips" in changes:
        if r.name == "vmacd":
            text = _sub(text, r"virtual_ips = \[", f'virtual_ips = ["{EXTRA_VIP}", ')
        else:
            text = _sub(text, r"virtual_ipaddress \{\n", f"virtual_ipaddress {{\n    {EXTRA_VIP}\n")
    if "broken" in changes:          # an invalid priority: the whole file must be refused
        text = _sub(text, r"\bpriority( = |\s+)\d+", r"priority\g<1>300")
    return text


def _sub(text: str, pattern: str, repl: str) -> str:
    new, n = re.subn(pattern, repl, text, count=1)
    if n != 1:
        raise ValueError(f"reload: pattern {pattern!r} not in the rendered config")
    return new


def _reload(r: Router, changes: set[str], advert_ms: int) -> None:
    """Write *r*'s config with *changes* and send it SIGHUP."""
    if "priority" in changes:
        r.cfg.priority = PRIORITIES[0] - 20           # the master stays above the backup
    if "interval" in changes:
        r.cfg.advert_ms = 2 * advert_ms
    r.conf_path.write_text(config_text(r, changes))
    for pid in r.term_pids():                         # vmacd: the daemon; keepalived: the parent
        kill(pid, signal.SIGHUP)


def reload(bed: Bed, opt: Options) -> list[dict]:
    r1, r2 = bed.master, bed.backup
    done: dict[str, set[str]] = {r1.node: set(), r2.node: set()}
    spans = []
    want = {"node": r1.node, "priority": r1.cfg.priority, "count": 1, "interval_ms": bed.advert_ms}
    for kind, where in RELOADS:
        want |= {"vips": {"count": 2}, "priority": {"priority": PRIORITIES[0] - 20},
                 "interval": {"interval_ms": 2 * bed.advert_ms}}.get(kind, {})
        bed.settle()
        t0 = _now()
        targets = [r2, r1] if where == "both" else [r1]
        for i, r in enumerate(targets):
            if i:
                bed.hold(ROLL_S)
            done[r.node].add(kind)
            _reload(r, done[r.node], bed.advert_ms)
        bed.hold(max(2.0, 10 * r1.cfg.advert_ms / 1000))
        bed.settle()                                  # what a reload set off ends in its window
        alive = all(r.vrrp_pids() for r in targets)
        spans.append((kind, ",".join(r.node for r in targets), t0, _now(), alive, bed.states(),
                      dict(want)))
    bed.finish()
    rows = []
    for kind, nodes, t0, t1, alive, states, wanted in spans:
        tr = bed.transitions(t0, t1)
        p = bed.probes(t0, t1)
        last = bed.last_advert(t0, t1) or {}
        wire = {k: last.get(k) for k in wanted}
        inv = {"same": "an unchanged instance loses nothing",
               "broken": "a refused config changes nothing"}.get(kind)
        quiet = p["lost"] == 0 and sum(tr.values()) == 0
        held = None if inv is None else (quiet and alive and wire == wanted
                                         and states == ["master", "backup"])
        rows.append(_row(bed, f"reload {kind}", t0, t1, tr, inv, held, reloaded=nodes,
                         alive=alive, states_after="/".join(states), wire_as_intended=wire == wanted,
                         on_wire=_wire(wire)))
    return rows


def _wire(adv: dict) -> str:
    """``r1 prio 180, 2 VIPs, 200 ms``: who advertised what at the end of a reload window."""
    if adv.get("node") is None:
        return "nothing"
    return f"{adv['node']} prio {adv['priority']}, VIPs {adv['count']}, {adv['interval_ms']} ms"


# -- advertisement flood -----------------------------------------------------------------------------
def flood(bed: Bed, opt: Options) -> list[dict]:
    r1 = bed.master
    t0 = _now()
    out = fault(bed.lab, None, "flood", node="x1", lan="lan", vrid=FLOOD_VRID, spread=FLOOD_SPREAD,
                priority=100, interval_cs=max(1, bed.advert_ms // 10), rate=opt.flood_pps,
                duration=opt.flood_s)
    t1 = _now()
    bed.hold(max(1.0, 5 * bed.advert_ms / 1000))
    states = bed.states()
    end = _now()
    bed.finish()
    tr = bed.transitions(t0, end)
    gap = bed.max_advert_gap_ms(r1.node, t0, t1)
    held = sum(tr.values()) == 0 and states == ["master", "backup"] and gap < bed.mdi_ms
    return [_row(bed, f"flood {opt.flood_pps / 1000:g}k pps {opt.flood_s:g}s", t0, end, tr,
                 "mastership unchanged, master's advert gap < MDI", held, flood_sent=out["sent"],
                 pps=round(out["sent"] / max(out["seconds"], 1e-3)), max_gap_ms=gap)]


CASES: dict[str, Callable[[Bed, Options], list[dict]]] = {
    "loss10": loss(10), "loss30": loss(30), "partition": partition,
    "freeze-master": freeze_master, "freeze-backup": freeze_backup,
    "restart-term": restart("term"), "restart-kill": restart("kill"), "replug": replug,
    "reload": reload, "flood": flood,
}
#: (impl, fault) the lab cannot run, with the reason printed in the table
UNSUPPORTED = {
    ("frr", "restart-term"): "lab's FRR restarts zebra with vrrpd",
    ("frr", "restart-kill"): "lab's FRR restarts zebra with vrrpd",
    ("frr", "replug"): "FRR needs its macvlan made again by the operator",
    ("frr", "reload"): "FRR vrrpd has no SIGHUP reload",
}
