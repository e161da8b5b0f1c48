"""Coverage-guided fuzzing (atheris, i.e. libFuzzer on Python coverage) with the same oracles.

    python tests/fuzz/covfuzz.py TARGET [--seconds 30] [--out lab-out/fuzz]

The raw-bytes targets take libFuzzer's bytes as their input (a wire target reads two leading
bytes as the receiver's auth and flags, the importer of Heartbeat splits at NUL bytes into its
three files). The corpus starts with the first inputs of the deterministic engine (real packets,
schema-built configs), so libFuzzer mutates from valid inputs and keeps what reaches new lines of
vmacd. A finding is written as the same JSON reproducer `run.py --replay` reads; the process
exits 1 then. One target per process: libFuzzer owns the process until it is done.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import pathlib
import sys

import atheris

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

with atheris.instrument_imports(include=["vmacd"]):
    import vmacd.config.emit
    import vmacd.config.import_heartbeat
    import vmacd.config.import_keepalived
    import vmacd.config.load
    import vmacd.control.commands
    import vmacd.core.auth
    import vmacd.core.wire  # noqa: F401 - instrumented here, used by the targets

# the harness's own modules, found through the sys.path entry above; imported after the
# instrumented vmacd modules (which they import) on purpose
import fuzzcore  # noqa: E402
from fuzz_wire import WireCase  # noqa: E402
from fuzztargets import TARGETS  # noqa: E402
from wiregen import SPECS  # noqa: E402

SEED_INPUTS = 300


def _flags(pseudo: bool, strict: bool, verify: bool) -> int:
    return pseudo | strict << 1 | verify << 2


def wire_from_bytes(data: bytes, payload: bool) -> WireCase:
    """[auth index, flags] + packet; payload mode: [auth, flags, ttl] + src + dst + payload,
    the addresses 4 or 16 bytes each as flag 0x08 says."""
    spec = SPECS[data[0] % len(SPECS)] if data else None
    flags = data[1] if len(data) > 1 else 7
    case = WireCase(data[2:], spec, bool(flags & 1), bool(flags & 2), bool(flags & 4))
    if payload:
        if spec is not None and spec.type == "ah":
            case.verify = False
        alen = 16 if flags & 8 else 4
        ttl, rest = (data[2] if len(data) > 2 else 255), data[3:].ljust(2 * alen, b"\0")
        case.ttl = None if flags & 0x10 else ttl
        case.src, case.dst = (ipaddress.ip_address(rest[:alen]), ipaddress.ip_address(rest[alen:2 * alen]))
        case.data = rest[2 * alen:]
    return case


def wire_to_bytes(case: WireCase, payload: bool) -> bytes:
    flags = _flags(case.pseudo, case.strict, case.verify)
    if not payload:
        return bytes((SPECS.index(case.spec), flags)) + case.data
    flags |= (8 if case.src.version == 6 else 0) | (0x10 if case.ttl is None else 0)
    return (bytes((SPECS.index(case.spec), flags, case.ttl or 0)) + case.src.packed + case.dst.packed
            + case.data)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _heartbeat_files(data: bytes) -> dict:
    """The bytes split at NUL into ha.cf, authkeys and haresources (the missing ones empty)."""
    parts = (data.split(b"\0") + [b""] * 2)[:3]
    return dict(zip(("hacf", "authkeys", "haresources"), (_text(p) for p in parts), strict=True),
                node=None)


CODECS = {
    "wire-ip": (lambda d: wire_from_bytes(d, False), lambda c: wire_to_bytes(c, False)),
    "wire-payload": (lambda d: wire_from_bytes(d, True), lambda c: wire_to_bytes(c, True)),
    "control-line": (bytes, bytes),
    "config": (lambda d: {"text": _text(d), "read_files": False}, lambda c: c["text"].encode()),
    "import-keepalived": (lambda d: {"text": _text(d)}, lambda c: c["text"].encode()),
    "import-heartbeat": (
        _heartbeat_files,
        lambda c: "\0".join((c["hacf"], c["authkeys"] or "", c["haresources"])).encode()),
}


def seed_corpus(name: str, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    target, (_, to_bytes) = TARGETS[name](), CODECS[name]
    for i in range(SEED_INPUTS):
        case = target.generate(fuzzcore.case_rng(1, name, i))
        with open(os.path.join(directory, f"seed-{i:04d}"), "wb") as fh:
            fh.write(to_bytes(case))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=sorted(CODECS))
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--out", default=str(HERE.parents[1] / "lab-out" / "fuzz"))
    args, rest = ap.parse_known_args()
    corpus = os.path.join(args.out, f"corpus-{args.target}")
    seed_corpus(args.target, corpus)
    target, (from_bytes, _) = TARGETS[args.target](), CODECS[args.target]

    def one(data: bytes) -> None:
        case = from_bytes(data)
        _, finding = fuzzcore.run_case(target, case)
        if finding is not None:
            finding.update(index=-1, case=target.dump(case))
            path = fuzzcore.write_reproducer(args.out, 0, args.target, finding, 1)
            print(f"\n== {args.target}: {finding['kind']}\n{finding['detail'][:1500]}\n"
                  f"reproducer: {path}\n  replay: python tests/fuzz/run.py --replay {path}", flush=True)
            os._exit(1)

    atheris.Setup([sys.argv[0], f"-max_total_time={args.seconds}", "-print_final_stats=1",
                   f"-artifact_prefix={args.out}/", "-rss_limit_mb=1024", *rest, corpus], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
