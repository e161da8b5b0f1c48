"""``vmac-lab``: up, down, ls, run, bench, demo (see netns-lab/README.md)."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import data_dir
from .lab import Lab, cleanup, cleanup_all_lab_prefixes, list_labs
from .topology import resolve
from .util import check_prefix

SCENARIO_DIR = data_dir("scenarios")


def cmd_up(args: argparse.Namespace) -> int:
    """Build a topology; leave it running (detached) or, with --wait, hold it until a signal."""
    lab = Lab(resolve(args.topo), prefix=args.prefix)
    lab.up()
    for node in lab.topo.nodes:
        print(f"{node:8} ns {lab.ns(node)}  " + "  ".join(
            f"{lab.ifname(node, lan)} {lab.addr(node, lan)}" for lan in lab.topo.nodes[node].lans))
    print(f"prefix {lab.prefix}  (vmac-lab down --prefix {lab.prefix})", flush=True)
    if not args.wait:
        lab.detach()
        return 0
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        done.wait()
    finally:
        lab.down()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Remove one lab by prefix, or every lab whose owner is gone (--all; --force: every lab)."""
    if args.prefix:
        removed = cleanup(check_prefix(args.prefix))
        print(f"{args.prefix}: removed {len(removed)} namespaces")
        return 0
    if args.all:
        for prefix in cleanup_all_lab_prefixes(force=args.force):
            print(f"{prefix}: removed")
        return 0
    print("vmac-lab down: give --prefix P or --all", file=sys.stderr)
    return 2


def cmd_ls(args: argparse.Namespace) -> int:
    """List labs found on this machine."""
    labs = list_labs()
    if args.json:
        print(json.dumps(labs, indent=1))
        return 0
    for info in labs:
        owner = info["owner_pid"] or "detached"
        alive = "alive" if info["owner_alive"] else "orphan"
        print(f"{info['prefix']}  {info['topology'] or '?':8} {info['status']:8} owner {owner} "
              f"({alive})  {len(info['namespaces'])} namespaces")
    return 0


def _scenario_path(name: str) -> Path | None:
    """A scenario file by path or by name under netns-lab/scenarios; None (said) when neither."""
    path = Path(name)
    path = path if path.exists() else SCENARIO_DIR / f"{name}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        print(f"vmac-lab: no scenario {name!r} (a path, or one of: {names})", file=sys.stderr)
        return None
    return path


def _is_web(path: Path) -> bool:
    """A web-cluster scenario file (``scenario = "webcluster"`` or ``"loadshare"``)."""
    import tomllib
    with path.open("rb") as fh:
        return "scenario" in tomllib.load(fh)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one scenario file (TOML) and print its record."""
    from . import scenario
    path = _scenario_path(args.scenario)
    if path is None:
        return 2
    if _is_web(path):
        return _web(path, args)
    overrides = {k: v for k, v in (("impl", args.impl), ("event", args.event),
                                   ("advert_ms", args.advert)) if v is not None}
    rec = scenario.run_file(path, out_dir=Path(args.out), **overrides)
    print(scenario.summary_line(rec))
    return 0 if rec.get("outage_ms") is not None else 1


def _web(path: Path, args: argparse.Namespace) -> int:
    """A web-cluster scenario: progress, the per-event table, JSON + PNG; exit 1 unless every
    event ended as expected with the neighbour entries on the vMACs."""
    from . import webcluster
    if args.impl not in (None, "vmacd"):
        print(f"vmac-lab: {path.stem} runs vmacd only, got --impl {args.impl}", file=sys.stderr)
        return 2
    events = args.event.split(",") if args.event else None
    try:
        sc = webcluster.WebScenario.from_file(path, advert_ms=args.advert, events=events)
    except (ValueError, TypeError) as exc:
        print(f"vmac-lab: {path.name}: {exc}", file=sys.stderr)
        return 2
    print(f"vmac-lab: {sc.scenario}: nodes a and b (lighttpd, vmacd from `vmacd import heartbeat`), "
          f"client c1; keepalive {sc.advert_ms} ms; events: {', '.join(sc.events)}", flush=True)
    rec = webcluster.run(sc, Path(args.out), progress=lambda m: print(f"  {m}", flush=True))
    print()
    print(webcluster.render(rec))
    print(f"record: {rec.get('json')}  timeline: {rec.get('png')}")
    good = webcluster.ok(rec)
    if not good:
        print(f"vmac-lab: {sc.scenario}: not every event ended as expected", file=sys.stderr)
    return 0 if good else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo scenario (3 routers + client, crash of the master) with --impl (vmacd default):
    prints the failover timeline; exit 1 when no failover happened."""
    from . import scenario, timeline
    path = SCENARIO_DIR / "demo.toml"
    if args.scenario:
        path = _scenario_path(args.scenario)
        if path is None:
            return 2
        if _is_web(path):
            return _web(path, args)
    overrides = {"impl": args.impl}
    if args.event:
        overrides["event"] = args.event
    if args.advert:
        overrides["advert_ms"] = args.advert
    sc = scenario.Scenario.from_file(path, **overrides)
    what = "3 routers + client" if path.name == "demo.toml" else f"{sc.topology} ({path.stem})"
    print(f"vmac-lab demo: {what} in network namespaces, {sc.impl}, {sc.event} of the master ...",
          flush=True)
    rec = scenario.run(sc, out_dir=Path(args.out))
    print()
    print(timeline.render(rec, png=rec.get("meta", {}).get("png")))
    print()
    print(scenario.summary_line(rec))
    ok = rec.get("new_master") is not None and rec.get("outage_ms") is not None
    if not ok:
        print("vmac-lab demo: NO FAILOVER: no backup became master", file=sys.stderr)
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench failover``: every impl x event x advert, interleaved by run."""
    from . import bench
    return bench.main(args)


def cmd_bench_scale(args: argparse.Namespace) -> int:
    """``bench scale``: CPU per advertisement, RSS, spurious transitions with N VRIDs."""
    from . import scale
    return scale.main(args)


def cmd_bench_jitter(args: argparse.Namespace) -> int:
    """``bench jitter``: the master's advertisement send jitter, idle and under load."""
    from . import jitter
    return jitter.main(args)


def cmd_bench_soak(args: argparse.Namespace) -> int:
    """``bench soak``: the fast profile under load for a long time, then a crash of the master."""
    from . import soak
    return soak.main(args)


def cmd_bench_faults(args: argparse.Namespace) -> int:
    """``bench faults``: the fault matrix (loss, partition, freeze, restarts, replug, reload, flood)."""
    from . import faultbench
    return faultbench.main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of vmac-lab."""
    ap = argparse.ArgumentParser(prog="vmac-lab", description="network-namespace VRRP lab")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="build a topology")
    p.add_argument("topo", help="a bundled topology (pair, trio, twolan) or a path")
    p.add_argument("--prefix", help="per-run prefix, vl + 5 hex + '-' (default: random)")
    p.add_argument("--wait", action="store_true", help="stay in the foreground, tear down on signal")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="tear labs down")
    p.add_argument("--prefix")
    p.add_argument("--all", action="store_true", help="every lab whose owner process is gone")
    p.add_argument("--force", action="store_true", help="with --all: also labs of live processes")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("ls", help="list labs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ls)
    for name, func in (("run", cmd_run), ("demo", cmd_demo)):
        p = sub.add_parser(name, help=f"{name} a failover scenario")
        if name == "run":
            p.add_argument("scenario", help="a bundled scenario (demo, pair-crash, webcluster) or a path")
        else:
            p.add_argument("--scenario", help="webcluster or loadshare (default: the trio crash)")
        p.add_argument("--event", help="the fault; web scenarios: a comma list of their events")
        p.add_argument("--advert")
        p.add_argument("--impl", default="vmacd" if name == "demo" else None)
        p.add_argument("--out", default="lab-out", help="directory for records")
        p.set_defaults(func=func)
    p = sub.add_parser("bench", help="benchmarks")
    bsub = p.add_subparsers(dest="bench", required=True)
    f = bsub.add_parser("failover", help="client-observed failover outage")
    f.add_argument("--impl", default="vmacd,keepalived,frr")
    f.add_argument("--event", default="crash,term,linkdown")
    f.add_argument("--advert", default="1s,100ms")
    f.add_argument("--runs", type=int, default=5)
    f.add_argument("--json", dest="json_out")
    f.add_argument("--topo", default="pair")
    f.add_argument("--out", default="lab-out")
    f.set_defaults(func=cmd_bench)
    f = bsub.add_parser("scale", help="CPU per advertisement, RSS, spurious transitions at N VRIDs")
    f.add_argument("--impl", default="vmacd,keepalived")
    f.add_argument("--vrids", default="1,50,255", help="comma list of instance counts (1..255)")
    f.add_argument("--advert", default="100ms")
    f.add_argument("--duration", default="20s")
    f.add_argument("--runs", type=int, default=1)
    f.add_argument("--json", dest="json_out")
    f.set_defaults(func=cmd_bench_scale)
    f = bsub.add_parser("jitter", help="advertisement send jitter of the master, idle and loaded")
    f.add_argument("--impl", default="vmacd,keepalived")
    f.add_argument("--advert", default="100ms")
    f.add_argument("--duration", default="20s")
    f.add_argument("--load", default="cpu,cpu-pinned,gc",
                   help="comma list of none, cpu, cpu-pinned, cpu-all, gc (idle is always measured)")
    f.add_argument("--runs", type=int, default=1)
    f.add_argument("--json", dest="json_out")
    f.set_defaults(func=cmd_bench_jitter)
    f = bsub.add_parser("soak", help="fast adverts under load for a long time: false transitions, "
                        "then a crash of the master")
    f.add_argument("--impl", default="vmacd,keepalived")
    f.add_argument("--advert", default="10ms,20ms")
    f.add_argument("--duration", default="10m", help="soak per implementation and interval (10m, 20s)")
    f.add_argument("--load", default="cpu-all", help="none, cpu or cpu-all, in both routers' namespaces")
    f.add_argument("--sched", default="default",
                   help="comma list: default (the daemons as they ship), other (both SCHED_OTHER), "
                   "fifo (both SCHED_FIFO 10)")
    f.add_argument("--runs", type=int, default=1)
    f.add_argument("--json", dest="json_out")
    f.set_defaults(func=cmd_bench_soak)
    f = bsub.add_parser("faults", help="what each fault costs the client: the fault matrix")
    f.add_argument("--impl", default="vmacd,keepalived", help="comma list of vmacd, keepalived, frr")
    f.add_argument("--fault", default="loss10,loss30,partition,freeze-master,freeze-backup,"
                   "restart-term,restart-kill,replug,reload,flood",
                   help="comma list of the cases (default: all)")
    f.add_argument("--runs", type=int, default=3)
    f.add_argument("--duration", default="10m", help="how long each loss row lasts (10m, 90s)")
    f.add_argument("--advert", default="100ms")
    f.add_argument("--restarts", type=int, default=5, help="restarts per storm")
    f.add_argument("--flood-pps", type=float, default=20000.0)
    f.add_argument("--flood-duration", default="5s")
    f.add_argument("--json", dest="json_out")
    f.set_defaults(func=cmd_bench_faults)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vmac-lab``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
