"""PNG of a web-cluster scenario record: one panel per event, in ms relative to the event.

Per panel, top to bottom: each node's state per instance (colours of ``vmaclab.plot``), then per
VIP the client's HTTP requests (a tick per request at its start, coloured by the node that served,
red when it failed) and its UDP probes (grey, lost ones red). The dotted line is the RFC bound for
b (event + Master_Down_Interval) on events where b must notice a silent master.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from .plot import LOSS_COLOR, STATE_COLORS

NODE_COLORS = {"a": "#17becf", "b": "#9467bd"}
SILENT_MASTER = ("cut", "crash", "kill")
SILENCED = ("crash", "kill")       # events that SIGKILL a's vmacd
LEAD_MS = 300.0


def _states(rec: dict, node: str, inst: str) -> list[dict]:
    """The node's reported states; a SIGKILLed daemon reports nothing more: stopped from then."""
    evs = [s for s in rec["states"] if s["node"] == node and s["instance"] == inst]
    for e in rec["events"]:
        if e["name"] in SILENCED and node == "a":
            evs.append({"t_ns": e["t_ns"], "state": "stopped"})
    return sorted(evs, key=lambda s: s["t_ns"])


def _state_lane(ax, rec: dict, node: str, inst: str, y: float, t0: int, t1: int) -> None:
    evs = _states(rec, node, inst)
    for k, s in enumerate(evs):
        end = evs[k + 1]["t_ns"] if k + 1 < len(evs) else rec["end_ns"]
        if end < t0 - LEAD_MS * 1e6 or s["t_ns"] > t1:
            continue
        ax.broken_barh([((s["t_ns"] - t0) / 1e6, (end - s["t_ns"]) / 1e6)], (y - 0.3, 0.6),
                       facecolors=STATE_COLORS.get(s["state"], "#000000"))


def _http_lane(ax, reqs: list[dict], y: float, t0: int, t1: int) -> None:
    shown = [r for r in reqs if t0 - LEAD_MS * 1e6 <= r["t_ns"] <= t1]
    groups = {LOSS_COLOR: [r for r in shown if not r["ok"]]}
    for node, color in NODE_COLORS.items():
        groups[color] = [r for r in shown if r["ok"] and r["node"] == node]
    for color, rs in groups.items():
        if rs:
            ax.vlines([(r["t_ns"] - t0) / 1e6 for r in rs], y - 0.3, y + 0.3, colors=color,
                      linewidth=1.0)


def _ping_lane(ax, loss: list[list[int]], interval_ms: float, y: float, t0: int, t1: int) -> None:
    ax.broken_barh([(-LEAD_MS, (t1 - t0) / 1e6 + LEAD_MS)], (y - 0.15, 0.3), facecolors="#d0d0d0")
    for first, last, _n in loss:
        if last >= t0 - LEAD_MS * 1e6 and first <= t1:
            ax.broken_barh([((first - t0) / 1e6, (last - first) / 1e6 + interval_ms)],
                           (y - 0.3, 0.6), facecolors=LOSS_COLOR)


def _panel(ax, rec: dict, e: dict, t1: int) -> None:
    t0 = e["t_ns"]
    labels, y = [], 0.0
    for inst in reversed(list(rec["vips"])):
        vip = rec["vips"][inst]
        _ping_lane(ax, rec["ping_loss"][inst], rec["config"]["probe_ms"], y, t0, t1)
        _http_lane(ax, rec["http"][inst], y + 1, t0, t1)
        labels += [f"ping {vip}", f"HTTP {vip}"]
        y += 2
    for node in reversed(("a", "b")):
        for inst in reversed(list(rec["vips"])):
            _state_lane(ax, rec, node, inst, y, t0, t1)
            labels.append(f"{node} {inst}" if len(rec["vips"]) > 1 else node)
            y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.axvline(0, color=LOSS_COLOR, linestyle="--", linewidth=1.0)
    if e["name"] in SILENT_MASTER:
        ax.axvline(rec["mdi_ms"], color="black", linestyle=":", linewidth=1.0)
    ax.set_xlim(-LEAD_MS, (t1 - t0) / 1e6)
    ax.grid(axis="x", alpha=0.3)
    parts = []
    for inst, v in e["vips"].items():
        h, p = v["http"], v["ping"]
        out = "open" if h["open_outage"] else f"{h['outage_ms']:.0f} ms"
        who = " -> ".join([str(h["served_before"])] + [str(m["to"]) for m in h["moves"]])
        parts.append(f"{rec['vips'][inst]}: HTTP outage {out}, {h['failed']} failed, "
                     f"{p['lost']} pings lost, {who}")
    flag = "" if e["settled"] else "  [NOT SETTLED]"
    ax.set_title(f"{e['name']}: {e['text']}{flag}\n" + "; ".join(parts), fontsize=8)


def plot(rec: dict, out_png: str) -> str:
    """Draw *rec* (``webcluster.run``'s record) as a PNG; returns the path."""
    events = rec["events"]
    rows = 2 * len(rec["vips"]) + 2 * len(rec["vips"])
    fig, axes = plt.subplots(len(events), 1, figsize=(11, (0.9 + 0.28 * rows) * len(events)),
                             dpi=100, squeeze=False)
    ends = [e["t_ns"] for e in events[1:]] + [rec["end_ns"]]
    for ax, e, end in zip(axes[:, 0], events, ends, strict=True):
        _panel(ax, rec, e, end)
    axes[-1, 0].set_xlabel("ms relative to the event")
    handles = [Patch(color=c, label=s) for s, c in STATE_COLORS.items()]
    handles += [Patch(color=c, label=f"page from {n}") for n, c in NODE_COLORS.items()]
    handles.append(Patch(color=LOSS_COLOR, label="request failed / probe lost"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(f"{rec['scenario']}: keepalive {rec['config']['advert_ms']} ms, "
                 f"MDI {rec['mdi_ms']:.0f} ms (dotted)", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
