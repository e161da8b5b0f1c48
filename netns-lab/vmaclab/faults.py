"""The lab's faults (netns-lab/README.md) by name: ``fault(lab, router, "crash")``,
``fault(lab, r, "loss", percent=30)``.

Every call returns a dict with at least ``fault`` and ``t`` (time.monotonic() of the injection).
nftables faults live in table ``bridge {prefix}faults`` of the LAN's bridge namespace; ``counters``
reads what they dropped, ``heal`` removes them.
"""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import attacker
from .util import kill, run

if TYPE_CHECKING:
    from .impls.base import Router
    from .lab import Lab

FAULTS = ("crash", "kill", "term", "freeze", "thaw", "linkdown", "linkup", "service", "service_up",
          "loss", "partition", "heal", "forge", "flood")
CHAIN = "faults"


def _lan(r: Router, args: dict) -> str:
    return args.pop("lan", None) or r.cfg.lan


def _crash(lab: Lab, r: Router, args: dict) -> dict:
    lan = _lan(r, args)
    run(["ip", "-n", lab.bridge_ns(lan), "link", "set", lab.bridge_port(r.node, lan), "down"])
    t = time.monotonic()
    r.crash_kill()
    return {"t": t, "port": lab.bridge_port(r.node, lan)}


def _signal(sig: int, which: str) -> Callable[[Lab, Router, dict], dict]:
    def inject(lab: Lab, r: Router, args: dict) -> dict:
        pids = r.term_pids() if which == "term" else r.vrrp_pids()
        t = time.monotonic()
        for pid in pids:
            kill(pid, sig)
        return {"t": t, "pids": pids}
    return inject


def _kill(lab: Lab, r: Router, args: dict) -> dict:
    pids = r.pids()
    t = time.monotonic()
    r.kill_daemon()
    return {"t": t, "pids": list(pids.values())}


def _link(state: str) -> Callable[[Lab, Router, dict], dict]:
    def inject(lab: Lab, r: Router, args: dict) -> dict:
        dev = lab.ifname(r.node, _lan(r, args))
        t = time.monotonic()
        run(["ip", "-n", lab.ns(r.node), "link", "set", dev, state])
        return {"t": t, "dev": dev}
    return inject


def _service(up: bool) -> Callable[[Lab, Router, dict], dict]:
    def inject(lab: Lab, r: Router, args: dict) -> dict:
        if not r.cfg.track or "file" not in r.cfg.track:
            raise ValueError(f"{r.node}: service fault needs track={{'file': PATH}} in configure()")
        marker = Path(r.cfg.track["file"])
        t = time.monotonic()
        if up:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return {"t": t, "file": str(marker)}
    return inject


def table(lab: Lab) -> str:
    """Name of the nftables table (family bridge) holding the lab's drop rules."""
    return f"{lab.prefix}faults"


def _nft(lab: Lab, lan: str, rules: Sequence[str]) -> None:
    ns, tbl = lab.bridge_ns(lan), table(lab)
    text = (f"table bridge {tbl} {{\n  chain {CHAIN} {{\n"
            f"    type filter hook forward priority -100; policy accept;\n  }}\n}}\n"
            + "".join(f"add rule bridge {tbl} {CHAIN} {r}\n" for r in rules))
    run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text)


def _loss(lab: Lab, r: Router | None, args: dict) -> dict:
    lan = args.pop("lan", None) or (r.cfg.lan if r else next(iter(lab.topo.lans)))
    pct = int(args.pop("percent"))
    if not 0 <= pct <= 100:
        raise ValueError(f"loss percent must be 0..100, got {pct}")
    match = f"numgen random mod 100 < {pct} " if pct < 100 else ""   # nft: 100 is out of range
    _nft(lab, lan, [f'{match}counter drop comment "loss {pct}%"'])
    return {"t": time.monotonic(), "lan": lan, "percent": pct}


def _partition(lab: Lab, r: Router | None, args: dict) -> dict:
    lan = args.pop("lan", None) or (r.cfg.lan if r else next(iter(lab.topo.lans)))
    a, b = list(args.pop("a")), list(args.pop("b"))
    ports = {side: ", ".join(f'"{lab.bridge_port(n, lan)}"' for n in grp)
             for side, grp in (("a", a), ("b", b))}
    _nft(lab, lan, [(f'iifname {{ {ports["a"]} }} oifname {{ {ports["b"]} }} counter drop '
                     f'comment "partition a->b"'),
                    (f'iifname {{ {ports["b"]} }} oifname {{ {ports["a"]} }} counter drop '
                     f'comment "partition b->a"')])
    return {"t": time.monotonic(), "lan": lan, "a": a, "b": b}


def _heal(lab: Lab, r: Router | None, args: dict) -> dict:
    lan = args.pop("lan", None) or (r.cfg.lan if r else next(iter(lab.topo.lans)))
    run(["ip", "netns", "exec", lab.bridge_ns(lan), "nft", "delete", "table", "bridge", table(lab)],
        check=False)
    return {"t": time.monotonic(), "lan": lan}


def counters(lab: Lab, lan: str) -> dict[str, dict[str, int]]:
    """Drop counters of the fault rules on *lan*: {comment: {"packets": n, "bytes": m}}."""
    cp = run(["ip", "netns", "exec", lab.bridge_ns(lan), "nft", "-j", "list", "table", "bridge",
              table(lab)], check=False)
    if cp.returncode != 0:
        return {}
    out: dict[str, dict[str, int]] = {}
    for item in json.loads(cp.stdout)["nftables"]:
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule["expr"]:
            if "counter" in expr:
                out[rule.get("comment", str(rule["handle"]))] = dict(expr["counter"])
    return out


def _attack(flood: bool) -> Callable[[Lab, Router | None, dict], dict]:
    def inject(lab: Lab, r: Router | None, args: dict) -> dict:
        node = args.pop("node", None) or lab.topo.attackers()[0]
        lan = args.pop("lan", None) or (r.cfg.lan if r else lab.topo.nodes[node].lans[0])
        if flood:
            args.setdefault("rate", 100.0)
            args.setdefault("duration", 1.0)
        if r is not None:
            args.setdefault("vrid", r.cfg.vrid)
            args.setdefault("version", r.cfg.version)
        t = time.monotonic()
        summary = attacker.send(lab, node, lan, **args)
        args.clear()
        return {"t": t, "node": node, **summary}
    return inject


_TABLE: dict[str, Callable] = {
    "crash": _crash, "kill": _kill, "term": _signal(signal.SIGTERM, "term"),
    "freeze": _signal(signal.SIGSTOP, "vrrp"), "thaw": _signal(signal.SIGCONT, "vrrp"),
    "linkdown": _link("down"), "linkup": _link("up"), "service": _service(False),
    "service_up": _service(True), "loss": _loss, "partition": _partition, "heal": _heal,
    "forge": _attack(False), "flood": _attack(True),
}


def fault(lab: Lab, router_impl: Router | None, name: str, **args: object) -> dict:
    """Inject fault *name* (see FAULTS) on *router_impl*'s node/LAN; returns what was done.

    loss: ``percent``; partition: ``a``, ``b`` (lists of node names); forge/flood: fields of
    ``attacker.send`` (vrid, priority, count, rate, duration, ttl, ...); all: optional ``lan``.
    """
    if name not in _TABLE:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    result = _TABLE[name](lab, router_impl, dict(args))
    return {"fault": name, "node": getattr(router_impl, "node", None) if router_impl else None,
            **result}
