#!/usr/bin/env python3
"""Cost of vmacd's metrics: per-call cost of the per-packet methods, a scrape of 255 instances
on a real event loop, and the memory the metrics code adds to the daemon, beside
prometheus_client (the library it replaced) measured in the same run.

    python tools/bench_metrics.py [--runs 5] [--json FILE]

Every figure is the median of `--runs` runs. Per call: the best of 7 repeats of 100 000 calls
(timeit's advice: the minimum is the machine's cost, the rest is noise). Scrape: curl fetches
/metrics from a Metrics server on a vmacd.loop.Loop in this process while a 1 ms timer runs;
"longest iteration" is the most CPU time one loop iteration took during the scrape, "timer
lateness" the worst wall-clock lateness of the 1 ms timer ("no scrape": the same over 50 ms
without a scrape, the machine's noise floor). "at once" renders the same page in a single step
(the comparison). RSS: VmRSS of a fresh interpreter after the import, minus the
interpreter's own.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time
import timeit

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the checkout's vmacd, found through the sys.path entry above (run as a script, not installed)
from vmacd.control.httpd import MetricsServer  # noqa: E402
from vmacd.control.metrics import Metrics  # noqa: E402
from vmacd.loop import Loop  # noqa: E402

HOT = ("i.advert_sent()", "i.advert_received()", "i.dropped('ttl')", "i.checksum_variant('pseudo-header')",
       "i.interval(0.1)", "m.stall(0.0002)")


def per_call(stmt: str, ns: dict) -> float:
    return min(timeit.repeat(stmt, globals=ns, number=100_000, repeat=7)) / 100_000


def hot_path() -> dict[str, float]:
    m = Metrics()
    ns: dict = {"i": m.instance("lan", 51, "eth1"), "m": m}
    out = {stmt: per_call(stmt, ns) for stmt in HOT}
    try:
        from prometheus_client import CollectorRegistry, Counter, Histogram
    except ImportError:
        return out
    reg = CollectorRegistry()
    ns["c"] = Counter("x_total", "x", ["a"], registry=reg).labels("lan")
    ns["h"] = Histogram("y", "y", ["a"], registry=reg).labels("lan")
    out["prometheus_client Counter child .inc()"] = per_call("c.inc()", ns)
    out["prometheus_client Histogram child .observe()"] = per_call("h.observe(0.1)", ns)
    return out


def big(n: int = 255) -> Metrics:
    m = Metrics(node="r1")
    for k in range(1, n + 1):
        i = m.instance(f"vr{k}", k, "eth1")
        i.transition("backup", "master", 1.7e9)
        i.interval(0.1)
        i.master_seen("192.0.2.1")
        i.checksum_variant("pseudo-header")
        i.track("eth0", True)
        i.resources(["httpd"])
    return m


def scrape(loop: Loop, port: int, curl: str) -> tuple[float, float, int]:
    """(longest iteration CPU s, worst 1 ms timer lateness s, page bytes) of one scrape."""
    late: list[float] = []
    loop.on_late = late.append
    ticking = [True]

    def tick() -> None:
        if ticking[0]:
            loop.call_later(0.001, tick)

    loop.call_later(0.001, tick)
    p = subprocess.Popen([curl, "-fsS", "-o", "/dev/null", "-w", "%{size_download}",
                          f"http://127.0.0.1:{port}/metrics"], stdout=subprocess.PIPE, text=True)
    while not late:                          # the tick that waited behind Popen's fork and exec
        loop.run_once(0.002)
    late.clear()                             # curl is still starting: it needs milliseconds
    longest = 0.0
    while p.poll() is None:
        t0 = time.thread_time()
        loop.run_once(0.002)
        longest = max(longest, time.thread_time() - t0)
    n = len(late)
    while len(late) == n:                   # the timer that waited behind the last iteration
        loop.run_once(0.002)
    ticking[0] = False
    loop.on_late = None
    size = int(p.stdout.read() or 0)
    if p.wait() != 0:
        raise SystemExit("curl failed")
    return longest, max(late), size


def idle_lateness(loop: Loop, seconds: float = 0.05) -> float:
    """Worst lateness of the 1 ms timer with no scrape: the machine's noise floor."""
    late: list[float] = []
    loop.on_late = late.append
    end = loop.time() + seconds

    def tick() -> None:
        if loop.time() < end:
            loop.call_later(0.001, tick)

    loop.call_later(0.001, tick)
    while loop.time() < end + 0.002:
        loop.run_once(0.002)
    loop.on_late = None
    return max(late)


def scrapes(curl: str, n: int = 7) -> dict[str, float]:
    m = big()
    loop = Loop()
    stepped = MetricsServer(loop, "127.0.0.1:0", m.renderer)
    at_once = MetricsServer(loop, "127.0.0.1:0", lambda: m.renderer(chunk=60.0))
    try:
        out: dict[str, float] = {"no scrape: 1 ms timer lateness": statistics.median(
            idle_lateness(loop) for _ in range(n))}
        for name, srv in (("stepped", stepped), ("at once", at_once)):
            runs = [scrape(loop, srv.address[1], curl) for _ in range(n)]
            out[f"{name}: longest iteration (CPU)"] = statistics.median(r[0] for r in runs)
            out[f"{name}: 1 ms timer lateness"] = statistics.median(r[1] for r in runs)
            out["page bytes"] = runs[-1][2]
        r = m.renderer()
        t0 = time.thread_time()
        while not r.step():
            pass
        out["whole render (CPU)"] = time.thread_time() - t0
        out["render steps"] = r.steps
        return out
    finally:
        stepped.close()
        at_once.close()
        loop.close()


def rss_after(imports: str) -> float:
    code = (f"import re; {imports}; "
            "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
    return int(subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                              check=True, cwd=ROOT).stdout) * 1024.0


def memory() -> dict[str, float]:
    base = rss_after("import vmacd.core.wire, vmacd.loop, logging, socket")
    out = {"vmacd.control.metrics": rss_after("import vmacd.core.wire, vmacd.loop, logging, socket, "
                                              "vmacd.control.metrics") - base}
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return out
    out["prometheus_client (+ exposition)"] = rss_after(
        "import vmacd.core.wire, vmacd.loop, logging, socket, prometheus_client, "
        "prometheus_client.exposition") - base
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        print("curl is needed (make deps installs it)", file=sys.stderr)
        return 2
    runs = [{"hot": hot_path(), "scrape": scrapes(curl), "rss": memory()} for _ in range(args.runs)]
    result = {part: {k: statistics.median(r[part][k] for r in runs) for k in runs[0][part]}
              for part in ("hot", "scrape", "rss")}
    result["runs"] = args.runs
    print(f"per-packet methods (median of {args.runs} runs)")
    for k, v in result["hot"].items():
        print(f"  {k:48s} {v * 1e9:8.0f} ns")
    print("scrape of 255 instances on a vmacd.loop.Loop")
    for k, v in result["scrape"].items():
        shown = f"{v:10.0f}" if k in ("page bytes", "render steps") else f"{v * 1e3:8.2f} ms"
        print(f"  {k:48s} {shown}")
    print("RSS added to the daemon by the import")
    for k, v in result["rss"].items():
        print(f"  {k:48s} {v / 1e6:8.1f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
