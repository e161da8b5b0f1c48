"""A failover record (``RunRecord`` dict) as figures and as a timeline a network engineer can read.

``analyze(rec)`` derives, in ms relative to the fault:

* ``takeover_ms``  -- the new master's state change: its first advertisement as master on the wire
  (kernel timestamp at its bridge port; a new master sends one at once on the transition), or, without
  a capture, the daemon's own state report;
* ``notify_ms``    -- the daemon's state report (vmacd/keepalived notify, FRR polled through vtysh);
* ``last_advert_ms`` -- the old master's last advertisement before the fault;
* ``expected_ms``  -- when the RFC says the backup takes over: the priority-0 advertisement +
  Skew_Time when the old master sent one (``term``; ``kill`` of vmacd, whose guardian hands over),
  else last advertisement heard + Master_Down_Interval (``crash``/``linkdown``/``kill``: the timer
  restarts at each advertisement);
* ``fdb_ms`` (vMAC moved to the new master's bridge port), ``garps`` (list of ms), ``outage_ms``.
"""
from __future__ import annotations

FAULT_TEXT = {
    "crash": "LAN port cut at the bridge, daemons SIGKILLed (power loss)",
    "kill": "VRRP daemon SIGKILLed, box and its config stay",
    "term": "SIGTERM to the daemon (graceful stop: priority 0)",
    "linkdown": "the router's own LAN interface set down (cable pulled)",
    "freeze": "daemon SIGSTOPped (hung)",
}


def _ms(t_ns: int | None, t0: int | None) -> float | None:
    return None if t_ns is None or t0 is None else round((t_ns - t0) / 1e6, 3)


def analyze(rec: dict) -> dict:
    """Derived timings of one run (see module docstring); missing ones are None."""
    f = rec.get("fault_ns")
    ev = rec.get("events", [])
    old, new = rec.get("old_master"), rec.get("new_master")
    out: dict = {"takeover_ms": None, "notify_ms": None, "last_advert_ms": None, "expected_ms": None,
                 "prio0_ms": None, "fdb_ms": None, "garps": [], "first_advert_ms": None,
                 "outage_ms": rec.get("outage_ms")}
    if f is None:
        return out
    adv_old = [e for e in ev if e["kind"] == "advert" and e.get("node") == old]
    first = [e for e in ev if e["kind"] == "advert" and new and e.get("node") == new
             and e["t_ns"] >= f]
    # the old master's adverts count as heard until the new master's first one (a link set down
    # by a command lets an advert or two out after the fault's timestamp)
    heard_until = first[0]["t_ns"] if first else f + 5e6
    before = [e for e in adv_old if e["t_ns"] <= heard_until and e.get("priority") != 0]
    prio0 = [e for e in adv_old if e["t_ns"] >= f and e.get("priority") == 0]
    if before:
        out["last_advert_ms"] = _ms(before[-1]["t_ns"], f)
    if prio0:
        out["prio0_ms"] = _ms(prio0[0]["t_ns"], f)
    if new:
        if first:
            out["first_advert_ms"] = _ms(first[0]["t_ns"], f)
        st = [e for e in ev if e["kind"] == "state" and e.get("node") == new and e["t_ns"] >= f
              and e.get("state") == "master"]
        if st:
            out["notify_ms"] = _ms(st[0]["t_ns"], f)
        out["takeover_ms"] = out["first_advert_ms"] if out["first_advert_ms"] is not None \
            else out["notify_ms"]
        out["garps"] = [_ms(e["t_ns"], f) for e in ev if e["kind"] == "garp" and e.get("node") == new
                        and e["t_ns"] >= f]
        fdb = [e for e in ev if e["kind"] == "fdb" and e.get("node") == new and e["t_ns"] >= f]
        if fdb:
            out["fdb_ms"] = _ms(fdb[0]["t_ns"], f)
    mdi, skew = rec.get("mdi_ms"), rec.get("skew_ms")
    if out["prio0_ms"] is not None and skew is not None:
        # term, and a kill that something still hands over (vmacd's guardian): the backup's timer
        # is Skew_Time from the priority-0 advertisement
        out["expected_ms"] = round(out["prio0_ms"] + skew, 3)
    elif rec.get("event") in ("crash", "linkdown", "kill", "freeze") and out["last_advert_ms"] is not None \
            and mdi is not None:
        out["expected_ms"] = round(out["last_advert_ms"] + mdi, 3)
    return out


def _line(t: float | None, who: str, what: str) -> str:
    ts = "        ?" if t is None else f"{t:+9.1f}"
    return f"  {ts} ms  {who:4} {what}"


def render(rec: dict, png: str | None = None, max_garps: int = 5) -> str:
    """The readable failover timeline of *rec* (a RunRecord dict)."""
    f = rec.get("fault_ns")
    a = analyze(rec)
    ev = rec.get("events", [])
    old, new = rec.get("old_master"), rec.get("new_master")
    meta = rec.get("meta", {})
    prios = meta.get("priorities", {})
    adv = rec["advert_ms"]
    nodes = rec.get("nodes") or []
    vip = meta.get("vip", "the VIP")
    lines = [f"{rec['impl']} failover: VRRPv{meta.get('version', 3)} VRID {meta.get('vrid', '?')}, "
             f"advert {adv:g} ms, routers "
             + ", ".join(f"{n} (prio {prios[n]})" if n in prios else n for n in nodes)
             + f"; client probes {vip} every {rec.get('probe', {}).get('interval_ms', 0):g} ms",
             (f"RFC 9568 §6.1 for the backup (priority {rec['backup_priority']}): "
              f"Skew_Time = (256-{rec['backup_priority']})*{adv:g}/256 = {rec['skew_ms']:.1f} ms, "
              f"Master_Down_Interval = 3*{adv:g} + Skew_Time = {rec['mdi_ms']:.1f} ms"), ""]
    rows: list[tuple[float, str]] = []
    if f is not None:
        for e in ev:
            t = (e["t_ns"] - f) / 1e6
            k = e["kind"]
            if k == "state":
                rows.append((t, _line(t, e["node"], f"state -> {e['state'].upper()}"
                                      + ("   (daemon report)" if e["state"] == "master" else ""))))
            elif k == "fault":
                rows.append((t, _line(t, e["node"], f"FAULT {e['name']}: "
                                      + FAULT_TEXT.get(e["name"], e["name"]))))
        if a["last_advert_ms"] is not None:
            rows.append((a["last_advert_ms"], _line(a["last_advert_ms"], old,
                                                    "last advertisement heard from the old master")))
        if a["prio0_ms"] is not None:
            rows.append((a["prio0_ms"], _line(a["prio0_ms"], old, "advertisement with priority 0 "
                                              "(I am leaving)")))
        if a["expected_ms"] is not None:
            why = ("priority-0 advert + Skew_Time" if a["prio0_ms"] is not None
                   else "last advert + Master_Down_Interval")
            rows.append((a["expected_ms"], _line(a["expected_ms"], "RFC", f"backup timer expires "
                                                 f"({why})")))
        if a["first_advert_ms"] is not None:
            rows.append((a["first_advert_ms"], _line(a["first_advert_ms"], new,
                                                     "first advertisement as master (on the wire)")))
        if a["fdb_ms"] is not None:
            fdb = next(e for e in ev if e["kind"] == "fdb" and e["t_ns"] >= f)
            rows.append((a["fdb_ms"], _line(a["fdb_ms"], "br", f"bridge FDB: vMAC {fdb['mac']} moved "
                                            f"{fdb.get('from')} -> {fdb.get('to')}")))
        for i, g in enumerate(a["garps"][:max_garps]):
            rows.append((g, _line(g, new, f"gratuitous ARP/NA for the VIP from the vMAC "
                                  f"(#{i + 1} of {len(a['garps'])})")))
        p = rec.get("probe") or {}
        if p.get("outage_start_ns") is not None and p.get("outage_ms"):
            t1 = (p["outage_start_ns"] - f) / 1e6
            t2 = (p["outage_end_ns"] - f) / 1e6
            rows.append((t1, _line(t1, "c1", "last probe answered before the outage")))
            rows.append((t2, _line(t2, "c1", "probes answered again"
                                   + (f" (by {p['last_responder']})" if p.get("last_responder") else ""))))
    rows.sort(key=lambda r: r[0])
    lines.append("  time rel. to fault  who  what")
    lines += [r[1] for r in rows]
    lines.append("")
    lines.append("Who was master when (from the daemons' state reports):")
    for n in nodes:
        segs, cur = [], None
        for e in [e for e in ev if e["kind"] == "state" and e.get("node") == n]:
            t = (e["t_ns"] - f) / 1e6 if f is not None else 0.0
            if e["state"] == "master" and cur is None:
                cur = t
            elif e["state"] != "master" and cur is not None:
                segs.append(f"{cur:+.1f} .. {t:+.1f} ms")
                cur = None
        if cur is not None:
            end = "fault" if n == old and rec.get("event") in ("crash", "kill") else "end of run"
            segs.append(f"{cur:+.1f} ms .. {end}" if end == "end of run"
                        else f"{cur:+.1f} .. +0.0 ms (fault)")
        lines.append(f"  {n:4} " + ("; ".join(segs) if segs else "never master"))
    lines.append("")
    p = rec.get("probe") or {}
    mdi, skew = rec["mdi_ms"], rec["skew_ms"]
    if rec.get("outage_ms") is not None:
        o = rec["outage_ms"]
        bound = skew + 20 if rec["event"] == "term" else mdi + 20
        name = "Skew_Time + 20 ms" if rec["event"] == "term" else "Master_Down_Interval + 20 ms"
        lines.append(f"Client: {p.get('lost')} of {p.get('sent')} probes lost; outage {o:.1f} ms "
                     f"({o / mdi:.0%} of Master_Down_Interval {mdi:.1f} ms; Skew_Time {skew:.1f} ms); "
                     f"target <= {name} = {bound:.1f} ms: {'met' if o <= bound else 'MISSED'}")
    else:
        lines.append("Client: no outage figure (no new master)")
    if a["takeover_ms"] is not None:
        extra = ""
        if a["expected_ms"] is not None:
            off = a["takeover_ms"] - a["expected_ms"]
            extra = f"; RFC expects {a['expected_ms']:+.1f} ms (off by {off:+.1f} ms)"
        lines.append(f"Takeover: {new} became master {a['takeover_ms']:.1f} ms after the fault{extra}")
    if rec.get("event") in ("crash", "linkdown"):
        lines.append("  (a crash falls at a random phase of the advert cycle: the backup's timer runs from "
                     "the last advert it heard, so the outage lies between MDI - interval and MDI)")
    if png:
        lines.append(f"PNG timeline: {png}")
    return "\n".join(lines)
