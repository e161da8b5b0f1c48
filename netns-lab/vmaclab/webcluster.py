"""The web-cluster scenarios: events in sequence on one cluster, what the client saw of each.

``webcluster`` (the seed: a serves, b stands by), events on a in this order by default:

=========  ==================================================================================
cut        a's service-LAN cable pulled (its bridge port down): b serves
reconnect  the cable back: a takes over again (auto_failback on = preempt)
web-kill   lighttpd SIGKILLed on a: its monitor fails, a hands over, b serves; a stays out for
           failure_timeout, then takes over again
term       SIGTERM to a's vmacd: planned handover, b serves
start      vmacd started again on a: a serves
kill       SIGKILL to a's vmacd (its guardian survives): b serves
restart    vmacd started again on a (it stops its resources once, then may win): a serves
=========  ==================================================================================

``loadshare`` (a primary of 192.0.2.254, b of 192.0.2.253): ``crash`` of a (cable cut at the
bridge, vmacd and guardian SIGKILLed): b serves both; ``recover`` (cable back, vmacd started).

Throughout, the client fetches each VIP's page every ``http_interval_ms`` (``vmaclab.httpprobe``),
probes each VIP over UDP every ``probe_ms`` (``vmaclab.prober``, echo on both nodes) and samples
its neighbour entries. Each event's window runs until the next event; per window and VIP: the
HTTP outage, failed requests, probes lost, who served before and after, when the page moved.
"""
from __future__ import annotations

import json
import signal
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import httpprobe
from .cluster import NODES, Cluster, Options
from .prober import EchoServer, Prober, ProbeResult, analyze
from .record import rfc_bounds
from .util import LabError, log, parse_duration_ms, wait_until
from .watch import NeighWatch

WEBCLUSTER_EVENTS = ("cut", "reconnect", "web-kill", "term", "start", "kill", "restart")
LOADSHARE_EVENTS = ("crash", "recover")
EVENT_TEXT = {
    "cut": "service-LAN cable of a pulled (bridge port down)",
    "reconnect": "cable of a back",
    "web-kill": "lighttpd on a SIGKILLed",
    "term": "SIGTERM to vmacd on a (planned handover)",
    "start": "vmacd on a started again",
    "kill": "SIGKILL to vmacd on a (guardian stays)",
    "restart": "vmacd on a restarted after its SIGKILL",
    "crash": "a lost: cable cut at the bridge, vmacd + guardian SIGKILLed",
    "recover": "a back: cable in, vmacd started",
}


@dataclass
class WebScenario:
    """A scenario file's keys (netns-lab/scenarios/webcluster.toml, loadshare.toml)."""
    scenario: str = "webcluster"
    advert_ms: int = 200                 # Heartbeat keepalive (the seed: 2 s)
    initdead_ms: int | None = 2000
    monitor_interval_ms: int = 500
    monitor_timeout_ms: int = 1000
    monitor_fall: int = 1
    failure_timeout_ms: int = 3000
    http_interval_ms: float = 25.0
    http_timeout_ms: float = 300.0
    probe_ms: float = 5.0
    hold_ms: int = 1000                  # the new state probed this long before the next event
    settle_s: float = 15.0               # bound for each event's outcome (beyond the timers)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scenario not in ("webcluster", "loadshare"):
            raise ValueError(f"scenario must be webcluster or loadshare, got {self.scenario!r}")
        known = WEBCLUSTER_EVENTS if self.scenario == "webcluster" else LOADSHARE_EVENTS
        self.events = list(self.events or known)
        bad = [e for e in self.events if e not in known]
        if bad:
            raise ValueError(f"events of {self.scenario} are {', '.join(known)}; got {bad}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: object) -> WebScenario:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("advert_ms", "initdead_ms"):
            if isinstance(data.get(key), str):
                try:
                    data[key] = parse_duration_ms(data[key])
                except ValueError:
                    raise ValueError(f"{key}: not a duration such as 200ms or 2s, got "
                                     f"{data[key]!r}") from None
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown scenario keys {sorted(unknown)}")
        return cls(**data)

    def options(self) -> Options:
        return Options(layout=self.scenario, keepalive_ms=self.advert_ms,
                       initdead_ms=self.initdead_ms, monitor_interval_ms=self.monitor_interval_ms,
                       monitor_timeout_ms=self.monitor_timeout_ms, monitor_fall=self.monitor_fall,
                       failure_timeout_ms=self.failure_timeout_ms)


# -- events: (inject, expected servers in order) --------------------------------------------------
Inject = Callable[[Cluster], float]


def _signal_vmacd(sig: int) -> Inject:
    def inject(c: Cluster) -> float:
        node = c.nodes["a"]
        t = time.monotonic()
        if sig == signal.SIGKILL:
            node.kill_daemon()
        else:
            node.proc.send_signal(sig)
        return t
    return inject


def _start_vmacd(c: Cluster) -> float:
    if c.nodes["a"].proc is not None:
        c.nodes["a"].proc.wait(timeout=30)          # a SIGTERMed vmacd may still be handing over
    t = time.monotonic()
    c.nodes["a"].start()
    return t


def _web_kill(c: Cluster) -> float:
    t = time.monotonic()
    if c.web["a"].kill(signal.SIGKILL) is None:
        raise LabError("web-kill: no lighttpd runs on a")
    return t


def _crash(c: Cluster) -> float:
    t = c.cut("a")
    c.nodes["a"].crash_kill()
    return t


def _recover(c: Cluster) -> float:
    t = c.cut("a", up=True)
    c.nodes["a"].proc.wait(timeout=10)
    c.nodes["a"].start()
    return t


EVENTS: dict[str, tuple[Inject, list[dict[str, str]]]] = {
    "cut": (lambda c: c.cut("a"), [{"ha1": "b"}]),
    "reconnect": (lambda c: c.cut("a", up=True), [{"ha1": "a"}]),
    "web-kill": (_web_kill, [{"ha1": "b"}, {"ha1": "a"}]),
    "term": (_signal_vmacd(signal.SIGTERM), [{"ha1": "b"}]),
    "start": (_start_vmacd, [{"ha1": "a"}]),
    "kill": (_signal_vmacd(signal.SIGKILL), [{"ha1": "b"}]),
    "restart": (_start_vmacd, [{"ha1": "a"}]),
    "crash": (_crash, [{"ha1": "b", "ha2": "b"}]),
    "recover": (_recover, [{"ha1": "a", "ha2": "b"}]),
}


@dataclass
class Probes:
    """The client's watchers of every VIP."""
    http: dict[str, httpprobe.HttpProber]
    ping: dict[str, Prober]
    echoes: list[EchoServer]
    neigh: NeighWatch

    @classmethod
    def start(cls, c: Cluster, sc: WebScenario) -> Probes:
        ns, wd = c.lab.ns(c.client), c.lab.workdir(c.client)
        echoes = [EchoServer.start(c.lab.ns(n), n) for n in NODES]
        ping = {i: Prober.start(ns, vip, interval_ms=sc.probe_ms, out_path=str(wd / f"ping-{i}.jsonl"))
                for i, vip in c.vips.items()}
        http = {i: httpprobe.HttpProber.start(ns, vip, str(wd / f"http-{i}.jsonl"),
                                              sc.http_interval_ms, sc.http_timeout_ms)
                for i, vip in c.vips.items()}
        neigh = NeighWatch(ns, list(c.vips.values())).start()
        return cls(http, ping, echoes, neigh)

    def stop(self) -> tuple[dict[str, list], dict[str, list[ProbeResult]]]:
        reqs = {i: p.stop() for i, p in self.http.items()}
        pings = {}
        for i, p in self.ping.items():
            p.stop()
            pings[i] = p.results
        self.neigh.stop()
        for e in self.echoes:
            e.stop()
        return reqs, pings


def _settle(c: Cluster, sc: WebScenario, expect: list[dict[str, str]]) -> tuple[bool, str]:
    """Wait for each expected {instance: serving node} in turn; (ok, what was missing)."""
    budget = sc.settle_s + (sc.failure_timeout_ms + (sc.initdead_ms or 0)) / 1000
    for want in expect:
        try:
            wait_until(lambda w=want: all(c.serving(i) == n for i, n in w.items()), budget,
                       interval=0.02, what=f"the page from {want}")
        except TimeoutError:
            got = {i: c.serving(i) for i in want}
            return False, f"expected {want}, the client got {got}"
    return True, ""


def _event(c: Cluster, sc: WebScenario, name: str) -> tuple[float, bool, str]:
    """Inject *name*, wait for its expected servers, check they hold: (time, ok, why not)."""
    inject, expect = EVENTS[name]
    try:
        t = inject(c)
    except (LabError, OSError, TimeoutError) as exc:
        return time.monotonic(), False, f"could not inject: {exc}"
    ok, why = _settle(c, sc, expect)
    time.sleep(sc.hold_ms / 1000)
    if ok and not _holds(c, expect[-1]):
        ok, why = False, f"{expect[-1]} did not hold for {sc.hold_ms} ms"
    return t, ok, why


def _restore_web(c: Cluster, sc: WebScenario) -> str:
    """After a web-kill that did not hand over, the lab starts a's lighttpd again itself, so the
    next events measure their own effect, not a dead server on the master."""
    if c.web["a"].pid() is None:
        c.web["a"].start()
    ok, _why = _settle(c, sc, [{"ha1": "a"}])
    time.sleep(sc.hold_ms / 1000)
    return "restored by the lab: lighttpd started on a by hand" + ("" if ok else ", still no page")


def _holds(c: Cluster, want: dict[str, str]) -> bool:
    """The expected node still serves each VIP and is master of it."""
    return all(c.serving(i) == n and c.nodes[n].states().get(i) == "master"
               for i, n in want.items())


def ping_window(results: list[ProbeResult], t0: int, t1: int, interval_ms: float) -> dict:
    """The UDP probes sent between *t0* and *t1*: sent, lost, longest outage, responder switches."""
    inside = [r for r in results if t0 <= r.sent_ns < t1]
    if not inside:
        return {"sent": 0, "lost": 0, "outage_ms": 0.0, "switches": []}
    s = analyze(inside, interval_ms)
    return {"sent": s.sent, "lost": s.lost, "outage_ms": s.outage_ms,
            "switches": [{"t_ms": round((w["t_ns"] - t0) / 1e6, 1), "from": w["from"], "to": w["to"]}
                         for w in s.switches]}


def run(sc: WebScenario, out_dir: Path | None = None, progress: Callable[[str], None] | None = None
        ) -> dict:
    """Build the cluster, run ``sc.events`` in order, return (and save) the record."""
    say = progress or (lambda _m: None)
    with Cluster(sc.options()) as c:
        say(f"cluster up ({c.lab.prefix}): a master, page from a")
        probes = Probes.start(c, sc)
        t_start = time.monotonic_ns()
        time.sleep(sc.hold_ms / 1000)
        done = []
        for name in sc.events:
            t, ok, why = _event(c, sc, name)
            say(f"{name}: {'ok' if ok else 'NOT SETTLED: ' + why}")
            done.append({"name": name, "t_ns": int(t * 1e9), "settled": ok, "note": why,
                         "text": EVENT_TEXT[name]})
            if not ok and name == "web-kill":
                done[-1]["restored"] = _restore_web(c, sc)
                say(f"{name}: {done[-1]['restored']}")
        t_end = time.monotonic_ns()
        reqs, pings = probes.stop()
        rec = _record(c, sc, done, reqs, pings, probes.neigh, (t_start, t_end))
    return save(rec, out_dir)


def _record(c: Cluster, sc: WebScenario, done: list[dict], reqs: dict, pings: dict,
            neigh: NeighWatch, span: tuple[int, int]) -> dict:
    mdi, skew = rfc_bounds(sc.advert_ms, 100)
    ends = [e["t_ns"] for e in done[1:]] + [span[1]]
    for e, end in zip(done, ends, strict=True):
        e["window_ms"] = round((end - e["t_ns"]) / 1e6, 1)
        e["vips"] = {i: {"http": httpprobe.window(reqs[i], e["t_ns"], end),
                         "ping": ping_window(pings[i], e["t_ns"], end, sc.probe_ms)}
                     for i in c.vips}
    states = [{"t_ns": int(t * 1e9), "node": n, "instance": i, "state": s}
              for n in NODES for t, i, s in c.nodes[n].transitions]
    return {"scenario": sc.scenario, "config": asdict(sc), "prefix": c.lab.prefix,
            "mdi_ms": round(mdi, 1), "skew_ms": round(skew, 1), "start_ns": span[0],
            "end_ns": span[1], "vips": c.vips, "vmacs": {i: c.vmac(i) for i in c.vips},
            "events": done, "states": sorted(states, key=lambda s: s["t_ns"]),
            "http": {i: [asdict(r) for r in rs] for i, rs in reqs.items()},
            "ping_loss": {i: analyze(p, sc.probe_ms).loss_intervals for i, p in pings.items()},
            "neigh": neigh.to_dict(),
            "neigh_macs": {i: sorted(map(str, neigh.macs(vip))) for i, vip in c.vips.items()},
            "import": {n: {"notes": c.imported[n].notes, "changes": c.imported[n].changes}
                       for n in NODES},
            "configs": {n: c.nodes[n].conf_path.read_text() for n in NODES}}


def save(rec: dict, out_dir: Path | None) -> dict:
    if out_dir is None:
        return rec
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{rec['scenario']}-{rec['config']['advert_ms']}ms"
    rec["json"] = str(stem.with_suffix(".json"))
    try:
        from .webplot import plot
        rec["png"] = plot(rec, str(stem.with_suffix(".png")))
    except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the measurement
        log.warning("plot failed: %s", exc)
    stem.with_suffix(".json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return rec


def run_file(path: Path, out_dir: Path | None = None, progress: Callable[[str], None] | None = None,
             **overrides: object) -> dict:
    return run(WebScenario.from_file(path, **overrides), out_dir, progress)


def _served(h: dict) -> str:
    moves = " -> ".join(str(m["to"]) for m in h["moves"])
    return f"{h['served_before']} -> {moves}" if moves else f"{h['served_before']} (stayed)"


def render(rec: dict) -> str:
    """The per-event table the demo prints."""
    head = (f"{'event':10} {'VIP':14} {'HTTP outage':>12} {'failed':>6} {'ping lost':>9}  "
            f"{'served (moved at)':30} what")
    lines = [head]
    for e in rec["events"]:
        for i, v in e["vips"].items():
            h, p = v["http"], v["ping"]
            out = "open" if h["open_outage"] else f"{h['outage_ms']:.0f} ms"
            at = ", ".join(f"{m['t_ms']:.0f} ms" for m in h["moves"])
            served = _served(h) + (f" ({at})" if at else "")
            lines.append(f"{e['name']:10} {rec['vips'][i]:14} {out:>12} {h['failed']:>6} "
                         f"{p['lost']:>9}  {served:30} {e['text']}"
                         + ("" if e["settled"] else f"  NOT SETTLED: {e['note']}")
                         + (f"; {e['restored']}" if e.get("restored") else ""))
    macs = ", ".join(f"{rec['vips'][i]} {'/'.join(m)}" for i, m in rec["neigh_macs"].items())
    lines.append(f"client's neighbour entries: {macs} (vMACs {', '.join(rec['vmacs'].values())})")
    lines.append(f"RFC bound for b: Master_Down_Interval {rec['mdi_ms']:.0f} ms, Skew_Time "
                 f"{rec['skew_ms']:.0f} ms at {rec['config']['advert_ms']} ms adverts")
    return "\n".join(lines)


def ok(rec: dict) -> bool:
    """Every event settled as expected and the neighbour entries never left the vMACs."""
    vmacs_only = all(set(m) <= {rec["vmacs"][i]} for i, m in rec["neigh_macs"].items())
    return all(e["settled"] for e in rec["events"]) and vmacs_only
