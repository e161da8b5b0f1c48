"""PNG timeline of a scenario run (matplotlib, Agg backend).

One lane per router with its state over time (master green, backup blue, fault orange, stopped grey,
init light grey), advertisement ticks and GARP marks; beneath, the client's probes: answered (coloured by
responder) and lost (red), with the measured outage shaded.  Vertical lines at each fault and at the RFC
bound (fault + Master_Down_Interval).  The x axis is milliseconds relative to the (first) fault.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from vmaclab.record import RunRecord

STATE_COLORS = {"master": "#2ca02c", "backup": "#1f77b4", "fault": "#ff7f0e", "stopped": "#7f7f7f",
                "init": "#d0d0d0"}
RESPONDER_COLORS = ["#17becf", "#9467bd", "#bcbd22", "#8c564b", "#e377c2"]
LOSS_COLOR = "#d62728"


def _span(rec: RunRecord) -> tuple[int, int]:
    """(first, last) monotonic ns covered by events and probes."""
    ts = [e["t_ns"] for e in rec.events]
    if rec.probe and rec.probe.get("start_ns") is not None:
        ts += [rec.probe["start_ns"], rec.probe["end_ns"]]
    if rec.bound_ns is not None:
        ts.append(rec.bound_ns)
    if not ts:
        raise ValueError("record has neither events nor probes to plot")
    return min(ts), max(ts)


#: faults after which a daemon can report nothing more: its lane ends there, shown as stopped
SILENCING = ("crash", "kill")


def _state_segments(rec: RunRecord, node: str, end_ns: int) -> list[tuple[int, int, str]]:
    """(start, end, state) segments of ``node`` from its state events. A daemon SIGKILLed by a
    `crash` or `kill` reports nothing afterwards: its last state ends at the fault."""
    evs = list(rec.events_of("state", node))
    for f in rec.events_of("fault", node):
        if f.get("name") in SILENCING and not any(e["t_ns"] > f["t_ns"] for e in evs):
            evs.append({"t_ns": f["t_ns"], "state": "stopped"})
    evs.sort(key=lambda e: e["t_ns"])
    return [(e["t_ns"], (evs[i + 1]["t_ns"] if i + 1 < len(evs) else end_ns), e["state"])
            for i, e in enumerate(evs)]


def _router_lanes(ax, rec: RunRecord, nodes: list[str], t0: int, end_ns: int) -> None:
    """Draw one state lane per router (y = 1 + index from the bottom of the router block)."""
    for i, node in enumerate(nodes):
        y = len(nodes) - i
        for start, end, state in _state_segments(rec, node, end_ns):
            ax.broken_barh([((start - t0) / 1e6, (end - start) / 1e6)], (y - 0.35, 0.5),
                           facecolors=STATE_COLORS.get(state, "#000000"))
        ticks = [(e["t_ns"] - t0) / 1e6 for e in rec.events_of("advert", node)]
        if ticks:
            ax.vlines(ticks, y + 0.17, y + 0.35, colors="black", linewidth=0.6)
        garps = [(e["t_ns"] - t0) / 1e6 for e in rec.events_of("garp", node)]
        if garps:
            ax.plot(garps, [y + 0.26] * len(garps), "v", color="#d62728", markersize=4)


def _probe_lane(ax, rec: RunRecord, t0: int) -> list:
    """Draw the client lane at y = 0; returns legend handles for responders."""
    p = rec.probe or {}
    colors: dict[str, str] = {}
    for seg in p.get("responders", []):
        c = colors.setdefault(str(seg["responder"]), RESPONDER_COLORS[len(colors) % len(RESPONDER_COLORS)])
        ax.broken_barh([((seg["first_ns"] - t0) / 1e6, max((seg["last_ns"] - seg["first_ns"]) / 1e6, 0.5))],
                       (-0.3, 0.45), facecolors=c)
    interval = p.get("interval_ms", 0.0)
    for first, last, _n in p.get("loss_intervals", []):
        ax.broken_barh([((first - t0) / 1e6, (last - first) / 1e6 + interval)], (-0.3, 0.45),
                       facecolors=LOSS_COLOR)
    if p.get("outage_start_ns") is not None:
        ax.axvspan((p["outage_start_ns"] - t0) / 1e6, (p["outage_end_ns"] - t0) / 1e6, ymin=0.0, ymax=1.0,
                   color=LOSS_COLOR, alpha=0.08)
    return [Patch(color=c, label=f"reply from {r}") for r, c in colors.items()]


def plot_timeline(rec: RunRecord, out_png: str, title: str | None = None) -> str:
    """Draw ``rec`` as a PNG timeline at ``out_png``; returns the path."""
    first, last = _span(rec)
    t0 = rec.fault_ns if rec.fault_ns is not None else first
    nodes = rec.nodes or sorted({e["node"] for e in rec.events if e["kind"] == "state"})
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.7 * (len(nodes) + 1)), dpi=110)
    _router_lanes(ax, rec, nodes, t0, last)
    handles = _probe_lane(ax, rec, t0)
    for e in rec.events_of("fault"):
        ax.axvline((e["t_ns"] - t0) / 1e6, color="#d62728", linestyle="--", linewidth=1.2)
        ax.text((e["t_ns"] - t0) / 1e6, len(nodes) + 0.55, f" {e.get('name')} {e.get('node')}",
                color="#d62728", fontsize=8, va="bottom")
    if rec.bound_ns is not None:
        ax.axvline((rec.bound_ns - t0) / 1e6, color="black", linestyle=":", linewidth=1.2)
        ax.text((rec.bound_ns - t0) / 1e6, len(nodes) + 0.55, f" MDI {rec.mdi_ms:.0f} ms", fontsize=8,
                va="bottom")
    ax.set_yticks(list(range(len(nodes) + 1)), ["client"] + list(reversed(nodes)))
    ax.set_ylim(-0.6, len(nodes) + 0.9)
    ax.set_xlim((first - t0) / 1e6, (last - t0) / 1e6)
    ax.set_xlabel("ms relative to fault" if rec.fault_ns is not None else "ms")
    ax.grid(axis="x", alpha=0.3)
    out = f"{rec.outage_ms:.1f} ms outage, {rec.lost} lost" if rec.probe else "no probes"
    ax.set_title(title or f"{rec.impl} {rec.event} advert {rec.advert_ms:g} ms run {rec.run}: {out}",
                 fontsize=10)
    handles = [Patch(color=c, label=s) for s, c in STATE_COLORS.items()] + handles
    handles.append(Patch(color=LOSS_COLOR, label="probe lost"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=min(8, len(handles)),
              fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
