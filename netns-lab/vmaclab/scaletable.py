"""The tables of ``vmac-lab bench scale``: medians over the runs of each (N, advert, impl).

``table``: the steady state (adverts/s, CPU per advertisement, CPU %, RSS per process and summed,
spurious transitions, the ratios to keepalived). ``life_table``: start-up, reload and stop.
"""
from __future__ import annotations

import statistics

#: the two daemon processes of each implementation: (main, second) as ``pids()`` names them
ROLES = {"vmacd": ("vmacd", "guardian"), "keepalived": ("keepalived", "vrrp")}


def _groups(rows: list[dict]) -> list[tuple[tuple, list[dict]]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["vrids"], r["advert_ms"], r["impl"]), []).append(r)
    return sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "vmacd"))


def _med(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _f(v: float | None, w: int, p: int = 1) -> str:
    return f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}}"


def _get(r: dict, *path: str) -> object:
    for k in path:
        if not isinstance(r, dict):
            return None
        r = r.get(k)  # type: ignore[assignment]
    return r


def _rss_mb(r: dict, node: str, which: int) -> float | None:
    roles = ROLES.get(r["impl"], ())
    kb = _get(r, "rss_kb", node) or {}
    if which == 2:
        return sum(kb.values()) / 1024 if kb else None
    role = roles[which] if which < len(roles) else None
    return kb[role] / 1024 if role in kb else None


def table(rows: list[dict]) -> str:
    """The steady state; RSS of r1 (the master) per process (``d``: vmacd / keepalived parent;
    ``g/c``: vmacd's guardian / keepalived's VRRP child) and summed, and r2's sum."""
    ka = {(n, a): [r for r in rs if "error" not in r]
          for (n, a, i), rs in _groups(rows) if i == "keepalived"}
    lines = [(f"{'vrids':>5} {'advert':>7} {'impl':11} {'runs':>4} {'sent/s':>7} {'µs/sent':>8} "
              f"{'µs/recv':>8} {'CPU% m':>7} {'CPU% b':>7} {'RSS m MB: d':>11} {'g/c':>5} {'sum':>6} "
              f"{'RSS b':>6} {'spurious':>8} {'bk sent':>7} {'vs ka sent':>10} {'vs ka recv':>10}")]
    for (n, adv, impl), rs in _groups(rows):
        ok = [r for r in rs if "error" not in r]
        if not ok:
            lines.append(f"{n:>5} {adv:>5}ms {impl:11} {0:>2}/{len(rs):<1} failed: {rs[0].get('error')}")
            continue
        rate = statistics.median(r["adverts_sent"] / r["window_s"] for r in ok)
        base = ka.get((n, adv))

        def med(k: str, rs: list[dict] = ok) -> float | None:
            return _med([r.get(k) for r in rs])

        def ratio(k: str, base: list[dict] | None = base) -> str:
            b, v = (med(k, base) if base else None), med(k)
            return f"{v / b:.2f}x" if b and v is not None else "-"

        m = "r1"
        lines.append(f"{n:>5} {adv:>5}ms {impl:11} {len(ok):>2}/{len(rs):<1} {rate:7.0f} "
                     f"{_f(med('us_per_sent'), 8)} {_f(med('us_per_received'), 8)} "
                     f"{_f(med('cpu_master_pct'), 7)} {_f(med('cpu_backup_pct'), 7)} "
                     f"{_f(_med([_rss_mb(r, m, 0) for r in ok]), 11)} "
                     f"{_f(_med([_rss_mb(r, m, 1) for r in ok]), 5)} "
                     f"{_f(_med([_rss_mb(r, m, 2) for r in ok]), 6)} "
                     f"{_f(_med([_rss_mb(r, 'r2', 2) for r in ok]), 6)} "
                     f"{max(r['spurious_transitions'] for r in ok):>8} "
                     f"{max(r['backup_sent'] for r in ok):>7} "
                     f"{ratio('us_per_sent'):>10} {ratio('us_per_received'):>10}")
    return "\n".join(lines)


def life_table(rows: list[dict]) -> str:
    """Start-up (s from exec), reload of r1 (ms to the new priority on the wire, transitions it
    caused, extra CPU ms), stop (s from SIGTERM: processes gone, box clean, r2 master of all)."""
    lines = [(f"{'vrids':>5} {'advert':>7} {'impl':11} {'runs':>4} | {'r1 start: answer':>16} "
              f"{'master':>6} | {'r2 start: answer':>16} {'backup':>6} | {'reload ms':>9} {'trans':>5} "
              f"{'CPU ms':>6} | {'r1 stop: exit':>13} {'clean':>5} {'r2 mst':>6} | "
              f"{'r2 stop: exit':>13} {'clean':>5}")]
    for (n, adv, impl), rs in _groups(rows):
        done = [r for r in rs if "start" in r]
        if not done:
            lines.append(f"{n:>5} {adv:>5}ms {impl:11} {0:>2}/{len(rs):<1} failed: {rs[0].get('error')}")
            continue

        def med(*path: str, rs: list[dict] = done) -> float | None:
            return _med([_get(r, *path) for r in rs])

        trans = [_get(r, "reload", "transitions") for r in done]
        trans_txt = str(max(t for t in trans if t is not None)) if any(t is not None for t in trans) \
            else "-"
        def cell(w: int, *path: str, p: int = 2) -> str:
            return _f(med(*path), w, p)

        def clean(node: str, rs: list[dict] = done) -> str:
            left = [_get(r, "stop", node, "left") or 0 for r in rs]
            if any(left):           # the box was not cleaned: how much the worst run left
                return f"L{max(left)}"
            return _f(med("stop", node, "clean_s"), 5, 2)

        lines.append(f"{n:>5} {adv:>5}ms {impl:11} {len(done):>2}/{len(rs):<1} | "
                     f"{cell(16, 'start', 'r1', 'first_answer_s')} "
                     f"{cell(6, 'start', 'r1', 'all_master_s')} | "
                     f"{cell(16, 'start', 'r2', 'first_answer_s')} "
                     f"{cell(6, 'start', 'r2', 'all_backup_s')} | "
                     f"{cell(9, 'reload', 'applied_ms', p=1)} {trans_txt:>5} "
                     f"{cell(6, 'reload', 'cpu_ms', p=0)} | "
                     f"{cell(13, 'stop', 'r1', 'exit_s')} {clean('r1'):>5} "
                     f"{cell(6, 'stop', 'r1', 'handover_s')} | "
                     f"{cell(13, 'stop', 'r2', 'exit_s')} {clean('r2'):>5}")
    return "\n".join(lines)


def progress(rec: dict) -> str:
    """One line per run as it finishes."""
    head = f"run {rec['run']} {rec['vrids']:>3} VRIDs {rec['impl']:10}:"
    if "error" in rec:
        return f"{head} FAILED {rec['error']}"
    st, rl, sp = rec.get("start", {}), rec.get("reload", {}), rec.get("stop", {})
    return (f"{head} {rec['adverts_sent']} sent, {rec['adverts_received']} received in "
            f"{rec['window_s']:.1f} s; {rec['us_per_sent']} µs/sent, {rec['us_per_received']} µs/recv; "
            f"RSS {rec['rss_master_kb'] / 1024:.1f}/{rec['rss_backup_kb'] / 1024:.1f} MB; spurious "
            f"{rec['spurious_transitions']}, backup sent {rec['backup_sent']}; start "
            f"{_get(st, 'r1', 'all_master_s')}/{_get(st, 'r2', 'all_backup_s')} s; reload "
            f"{rl.get('applied_ms')} ms, {rl.get('transitions')} transitions; stop "
            f"{_get(sp, 'r1', 'exit_s')}/{_get(sp, 'r2', 'exit_s')} s")
