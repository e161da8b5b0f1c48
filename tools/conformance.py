#!/usr/bin/env python3
"""Generate docs/conformance.md from the rfc marks in tests/ and RFC9568-REQUIREMENTS.md.

    python tools/conformance.py [--requirements PATH] [--tests tests] [--out docs/conformance.md]
    python tools/conformance.py --check      # exit 1 if the committed doc is stale

Each requirement id is listed as: tested both ways / one way (holds | refused) / not yet /
n/a (with the reason below) / departed (SPEC §3, with the switch back to the RFC). Marks are found
by an AST scan of the test sources (tests/rfcmarks.py): no pytest run, no conftest needed.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_REQS = ROOT.parent / "shared" / "RFC9568-REQUIREMENTS.md"

#: Rows that do not bind vmacd, and why (decided per row; a test on such a row still counts).
NOT_APPLICABLE = {
    "9568-5.1.1.2-2": "routing is the kernel's: Linux never forwards 224.0.0.0/24; vmacd relays nothing",
    "9568-5.1.2.2-2": "routing is the kernel's: Linux never forwards link-scope ff02::/16; vmacd relays nothing",
    "9568-6.4.3-5": "vmacd sends no router advertisements: run radvd on the vMAC device (started as a "
                    "resource on becoming master); the vMAC is down on backups, so radvd there is silent",
    "9568-6.4.3-7": "forwarding is the kernel's (ip_forward); vmacd only brings the vMAC device up",
    "9568-8.1.2-6": "operator advice; the docs' examples manage boxes by their own addresses",
    "9568-8.1.3-1": "vmacd runs no proxy ARP",
    "9568-8.2.1-1": "ICMPv6 redirects are sent by the kernel, not by vmacd",
    "9568-8.2.2-3": "NS for hosts are sent by the kernel's neighbour code, not by vmacd",
    "9568-8.2.2-4": "as 8.2.2-3",
    "9568-8.2.3-1": "RA content is radvd's configuration, outside vmacd",
    "9568-8.2.3-2": "RA content is radvd's configuration, outside vmacd",
    "9568-8.2.4-1": "neighbour cache updates are the kernel's (accept_untracked_na)",
    "9568-8.3.2-1": "operator advice (one owner per VRID); the runtime side is 8.3.2-2",
    "9568-8.3.2-3": "operator advice on spacing priorities",
    "9568-8.4.2-1": "vmacd does not offer the mixed v2/v3 mode",
    "9568-8.4.2-2": "vmacd does not offer the mixed v2/v3 mode (a MAY)",
    "9568-8.4.2-3": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-4": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-6": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2-7": "binds only in the mixed v2/v3 mode, which vmacd does not offer",
    "9568-8.4.2.1.1-1": "mixed-mode deployment advice; vmacd does not offer the mode",
    "9568-9-1": "deployment advice (RFC 9099 §2.3) for the operator",
}

#: SPEC §3 deliberate departures: id -> (what vmacd does by default or when enabled, switch back).
DEPARTED = {
    "9568-5.2.8-2": ("IPv4 v3 checksum sent with the pseudo-header by default (keepalived/FRR)",
                     "v3_checksum_pseudoheader = false"),
    "9568-6.4.3-10": ("make-before-break: priority 0 at once, VIPs kept until the successor is "
                      "heard (bounded)", 'graceful_handover = "rfc"'),
    "9568-7.2-3": ("opt-in `vmac = false` sends from the physical MAC", "vmac = true (default)"),
    "9568-7.2-7": ("opt-in `unicast_peers` sends unicast", "unicast_peers = [] (default)"),
    "9568-5.1.1.2-1": ("opt-in `unicast_peers` sends unicast", "unicast_peers = [] (default)"),
    "9568-6.1-9": ("Accept_Mode on by default: the master answers traffic to its VIPs, as every "
                   "service behind a cluster IP needs (keepalived, FRR)", "accept = false"),
    "9568-7.1-19": ("IPv6 adverts whose first address is not link-local (keepalived's and FRR's "
                    "usual list) are accepted and marked by default", "ipv6_link_local_first_strict = true"),
    "9568-5.2.9-1": ("opt-in `ipv6_link_local_first = false` sends an IPv6 list without the "
                     "link-local (keepalived's / FRR's)", "ipv6_link_local_first = true (default)"),
    "9568-6.1-3": ("opt-in `ipv6_link_local_first = false` accepts such a configured list",
                   "ipv6_link_local_first = true (default)"),
}


def _load_rfcmarks(tests: pathlib.Path):
    spec = importlib.util.spec_from_file_location("rfcmarks", tests / "rfcmarks.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["rfcmarks"] = mod
    spec.loader.exec_module(mod)
    return mod


def status(ways: set[str], req_id: str) -> str:
    if {"holds", "refused"} <= ways:
        tested = "both ways"
    elif ways:
        tested = f"one way ({next(iter(ways))})"
    else:
        tested = ""
    if req_id in DEPARTED:
        return f"departed; {tested or 'not yet tested'}"
    if req_id in NOT_APPLICABLE:
        return f"n/a{'; ' + tested if tested else ''}"
    return tested or "not yet"


def render(reqs, uses) -> str:
    by_id: dict[str, list] = collections.defaultdict(list)
    for u in uses:
        by_id[u.req_id].append(u)
    known = {r.req_id for r in reqs}
    counts: collections.Counter[str] = collections.Counter()
    lines = ["# RFC 9568 conformance", "",
             "Generated by `tools/conformance.py` from the `rfc` marks in `tests/` and "
             "`RFC9568-REQUIREMENTS.md`. Do not edit by hand.", "",
             "Status: **both ways** (a test shows the rule holds and one shows the opposite is "
             "refused), **one way**, **not yet**, **n/a** (reason below), **departed** (SPEC §3; "
             "switchable back to the RFC).", ""]
    body, section = [], None
    for r in reqs:
        if r.section != section:
            section = r.section
            body += ["", f"## {section}", "", "| id | level | status | tests |", "|---|---|---|---|"]
        ways = {u.way for u in by_id.get(r.req_id, [])}
        st = status(ways, r.req_id)
        counts[st.split(";")[0].split(" (")[0]] += 1
        tests = sorted({u.test.split("::")[-1] for u in by_id.get(r.req_id, [])})
        shown = ", ".join(f"`{t}`" for t in tests[:4]) + (f" +{len(tests) - 4}" if len(tests) > 4 else "")
        body.append(f"| {r.req_id} | {r.level} | {st} | {shown} |")
    lines += ["| status | rows |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    lines += body
    lines += ["", "## Departures (SPEC §3)", "", "| id | vmacd | back to the RFC |", "|---|---|---|"]
    lines += [f"| {i} | {what} | `{switch}` |" for i, (what, switch) in DEPARTED.items()]
    lines += ["", "## Not applicable", "", "| id | reason |", "|---|---|"]
    lines += [f"| {i} | {why} |" for i, why in NOT_APPLICABLE.items()]
    unknown = sorted({u.req_id for u in uses} - known)
    if unknown:
        lines += ["", "## Marks with an unknown id", ""]
        lines += [f"- `{i}` in {', '.join(sorted({u.test for u in by_id[i]}))}" for i in unknown]
    bad_way = sorted({(u.req_id, u.way) for u in uses if u.way not in ("holds", "refused")})
    if bad_way:
        lines += ["", "## Marks with a bad way (want holds|refused)", ""]
        lines += [f"- `{i}`: `{w}`" for i, w in bad_way]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requirements", type=pathlib.Path, default=DEFAULT_REQS)
    ap.add_argument("--tests", type=pathlib.Path, default=ROOT / "tests")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "conformance.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out is not up to date")
    args = ap.parse_args(argv)
    marks = _load_rfcmarks(args.tests)
    reqs = marks.requirements(args.requirements.read_text(encoding="utf-8"))
    uses = marks.scan([args.tests], ROOT)
    text = render(reqs, uses)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run tools/conformance.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(reqs)} requirements, {len(uses)} marks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
