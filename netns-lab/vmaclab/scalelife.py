"""The life-cycle phases of ``vmac-lab bench scale``: start-up, reload and stop of N instances.

Each phase writes its figures into the run's record (``rec["start"]``, ``rec["reload"]``,
``rec["stop"]``); a phase that cannot finish within its budget records what it saw (``None`` for a
figure it did not get, and a ``note``) instead of failing the run. Budgets grow with N: building 255
vMACs on a fresh box takes seconds.

* start-up: r1 alone, then r2. Per router: exec to the control socket's first ``status`` answer
  (vmacd; keepalived has no control socket), and exec to every instance master (r1) / backup (r2),
  from the daemon's own transition times (vmacd: ``history``; keepalived: notify_fifo lines).
* reload: VRID 1's priority on r1 (the master) lowered by 10 in the file, SIGHUP (vmacd: the daemon;
  keepalived: the parent). Applied = r1's first advertisement of VRID 1 with the new priority on the
  wire (captured at r1's bridge port); then a settle window (at least three Master_Down_Intervals)
  in which state changes on either router and advertisements from the backup are counted (all must
  be 0). ``cpu_ms``: CPU the master's daemon processes spent from SIGHUP to the end of the settle
  window beyond their steady-state rate.
* stop: SIGTERM to r1 (the master, r2 running: every instance is handed over), then to r2 (alone).
  Per router: SIGTERM to every daemon process gone (``exit_s``) and to the box clean (no macvlan,
  none of the VIPs; ``clean_s``; ``left``: macvlans + VIPs still there when the box did not get
  clean); for r1 also SIGTERM to r2 master of all (``handover_s``).
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from .lab import Lab
from .observe import Observer
from .record import rfc_bounds
from .util import kill, log, pid_alive, wait_until


def answer_budget_s(n: int) -> float:
    """How long a daemon with *n* instances may take to answer or converge before the bench says so."""
    return 15.0 + 0.25 * n


def _poll(pred, budget_s: float, interval: float = 0.02):
    """*pred*'s first truthy value within *budget_s*, else None."""
    try:
        return wait_until(pred, budget_s, interval=interval)
    except TimeoutError:
        return None


# ------------------------------------------------------------------ start-up
def start_router(r, n: int, want: str) -> dict:
    """Launch *r*; time the first control answer and every instance in *want* (seconds from exec)."""
    t_exec = r.launch()
    budget = answer_budget_s(n)
    out: dict = {"first_answer_s": None, f"all_{want}_s": None}
    first = r.first_answer(t_exec, budget)
    if first is not None:
        out["first_answer_s"] = round(first - t_exec, 3)
    if not r.running():
        out["note"] = f"{r.node}: exited at start-up: {r.log_tail()}"
        return out
    left = max(1.0, budget - (time.time() - t_exec))
    reached = _poll(lambda: r.reached(want, n), left, interval=0.1)
    if reached is None:
        out["note"] = f"{r.node}: not every instance {want} within {budget:.0f} s: {r.states()}"
    else:
        out[f"all_{want}_s"] = round(reached - t_exec, 3)
    return out


# ------------------------------------------------------------------ reload
class _Tail:
    """New JSON lines of a growing observer file, read incrementally."""

    def __init__(self, path: str) -> None:
        self.path, self.pos, self.part = path, 0, ""

    def new(self) -> list[dict]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.pos)
                data = fh.read()
                self.pos = fh.tell()
        except FileNotFoundError:
            return []
        *lines, self.part = (self.part + data).split("\n")
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def reload(lab: Lab, m, b, n: int, advert_ms: int, counters, steady_cpu_per_s: float,
           cpu_s) -> dict:
    """SIGHUP the master with VRID 1's priority lowered by 10 (see module docstring)."""
    vrid = m.cfg.vrid
    new_prio = m.prio(vrid) - 10
    port = lab.bridge_port(m.node, m.cfg.lan)
    path = str(lab.workdir("c1") / "reload.jsonl")
    obs = Observer.start(lab.bridge_ns(m.cfg.lan), [port], path, kinds=["vrrp"])
    tail = _Tail(path)
    out: dict = {"vrid": vrid, "priority": new_prio, "applied_ms": None}
    try:
        tr0 = {r.node: r.transitions() for r in (m, b)}
        c0 = counters()
        m.priorities[vrid] = new_prio
        m.conf_path.write_text(m.render())
        pids = list(m.pids().values())
        cpu0 = cpu_s(pids)
        t0, t0_ns = time.monotonic(), time.monotonic_ns()
        for pid in m.term_pids():
            kill(pid, signal.SIGHUP)

        def applied() -> int | None:
            for e in tail.new():
                if (e.get("type") == "frame" and e.get("dir") == "rx" and e.get("vrid") == vrid
                        and e.get("priority") == new_prio and e["t_ns"] >= t0_ns):
                    return e["t_ns"]
            return None
        t_applied = _poll(applied, answer_budget_s(n))
        if t_applied is None:
            out["note"] = f"no advertisement with priority {new_prio} within {answer_budget_s(n):.0f} s"
        else:
            out["applied_ms"] = round((t_applied - t0_ns) / 1e6, 1)
        settle = max(1.0, 3 * rfc_bounds(advert_ms, b.cfg.priority)[0] / 1000)
        time.sleep(settle)
        cpu1, t1 = cpu_s(pids), time.monotonic()
        c1 = counters()
        tr1 = {r.node: r.transitions() for r in (m, b)}
        out["transitions"] = sum((tr1[k] or 0) - (tr0[k] or 0) for k in tr0)
        out["backup_sent"] = c1.get(f"{b.node}-sent", 0) - c0.get(f"{b.node}-sent", 0)
        out["cpu_ms"] = round((cpu1 - cpu0 - steady_cpu_per_s * (t1 - t0)) * 1000, 1)
        out["states_after"] = {r.node: r.states() for r in (m, b)}
    finally:
        try:
            obs.stop()
        except RuntimeError as exc:
            log.warning("reload capture: %s", exc)
        Path(path).unlink(missing_ok=True)
    return out


# ------------------------------------------------------------------ stop
def leftovers(lab: Lab, node: str, vips: set[str]) -> int:
    """Macvlans plus addresses from *vips* still on *node* (0: the box is clean)."""
    links = json.loads(lab.run(node, ["ip", "-j", "-d", "link", "show"]).stdout or "[]")
    left = sum(1 for lk in links if lk.get("linkinfo", {}).get("info_kind") == "macvlan")
    addrs = json.loads(lab.run(node, ["ip", "-j", "addr", "show"]).stdout or "[]")
    return left + sum(1 for lk in addrs for a in lk.get("addr_info", []) if a.get("local") in vips)


def stop_router(lab: Lab, r, n: int, vips: set[str], successor=None) -> dict:
    """SIGTERM *r*; seconds to every daemon process gone, to the box clean (``left``: what is
    still there 2 s after the last process exited), and (with a *successor*) to the successor
    master of all *n* instances."""
    pids = list(r.pids().values())
    out: dict = {"exit_s": None, "clean_s": None, "left": None}
    t0, w0 = time.monotonic(), time.time()
    for pid in r.term_pids():
        kill(pid, signal.SIGTERM)
    budget = answer_budget_s(n)
    if _poll(lambda: not any(pid_alive(p) for p in pids), budget, interval=0.005):
        out["exit_s"] = round(time.monotonic() - t0, 3)
    else:
        out["note"] = f"{r.node}: still running {budget:.0f} s after SIGTERM"
    grace = 2.0 if out["exit_s"] is not None else 0.0        # nobody cleans after the exit
    if _poll(lambda: leftovers(lab, r.node, vips) == 0, grace + 0.05):
        out["clean_s"], out["left"] = round(time.monotonic() - t0, 3), 0
    else:
        out["left"] = leftovers(lab, r.node, vips)
    if successor is not None:
        reached = _poll(lambda: successor.reached("master", n), budget, interval=0.1)
        out["handover_s"] = None if reached is None else round(reached - w0, 3)
    r.stop()                  # reap, close the notify reader
    return out
