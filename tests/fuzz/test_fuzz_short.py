"""The short, deterministic fuzz run of the suite (20,000 inputs over every target, seed 1).

Each target must end without a finding (other than the KNOWN ones in fuzztargets.py) and must
have reached the outcomes it exists for: a generator that drifted into producing only garbage
(every packet dropped for its length, every config invalid TOML) fails here, not silently.
`make fuzz` runs the same targets with 50x the inputs.
"""
from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys

import fuzzcore
import pytest
from fuzzcore import Finding
from fuzztargets import KNOWN, SHORT, TARGETS

from vmacd.control import commands

CODEC_DROPS = {"ttl", "length", "version", "type", "addresses", "checksum", "interval", "auth"}
ACCEPTS = {"v3/ipv4 pseudo-header none", "v3/ipv4 no-pseudo-header none", "v3/ipv6 pseudo-header none",
           "v2/ipv4 v2 none", "v2/ipv4 v2 pass", "v2/ipv4 v2 ah", "v2/ipv4 v2 hmac-sha256",
           "v3/ipv4 pseudo-header hmac-sha256", "v3/ipv6 pseudo-header hmac-sha256"}
MUST_SEE = {
    "wire-ip": {f"drop {r}" for r in CODEC_DROPS | {"malformed"}} | {f"accept {a}" for a in ACCEPTS}
    | {"re-encoded", "replay refused", "decode() agrees"},
    "wire-payload": {f"drop {r}" for r in CODEC_DROPS} | {"re-encoded", "replay refused"}
    | {f"accept {a}" for a in ACCEPTS - {"v2/ipv4 v2 ah"}},
    "replay": {"accept", "drop replay"},
    "control-line": {f"valid {c}" for c in commands.REGISTRY} | {
        "parse error: request is not valid JSON", "parse error: request is not valid UTF-8",
        "parse error: empty request", "refused: request must be a JSON object"},
    "control-framing": {"0 oversize", "1 oversize", "partial last line", "ends with newline"},
    "config": {"config accepted", "invalid TOML", "instance[*].vrid", "instance[*].?",
               "instance[*].virtual_ips[*]", "auth.*.key", "resource.*.device", "global.metrics_listen",
               "track_script.*.command", "sync_group.*.instances[*]", "instance"},
    "import-heartbeat": {"translation valid"},
    "import-keepalived": {"translation valid"},
}
HERE = pathlib.Path(__file__).resolve().parent
MIN_OUTCOMES = {"config": 120, "import-keepalived": 20}


@pytest.mark.parametrize("name", list(SHORT))
def test_short_run(name, tmp_path):
    result = fuzzcore.run_range(TARGETS[name](), 1, 0, SHORT[name])
    unexpected = {k: f for k, f in result.findings.items() if k not in KNOWN.get(name, set())}
    report = []
    for kind, f in unexpected.items():
        path = fuzzcore.write_reproducer(str(tmp_path), 1, name, f, result.counts[kind])
        report.append(f"{kind} ({result.counts[kind]}x): {f['detail'][:500]}\n"
                      f"input: {json.dumps(f['case'])[:1500]}\nreproducer: {path}")
    assert not unexpected, "\n\n".join(report)
    missing = MUST_SEE[name] - set(result.outcomes)
    assert not missing, f"{name} never reached: {sorted(missing)}"
    assert len(result.outcomes) >= MIN_OUTCOMES.get(name, 1), sorted(result.outcomes)


class _Planted:
    """A target with a planted bug: 'b' in the input crashes, 'c' breaks the oracle."""

    name = "planted"

    def generate(self, rng: random.Random) -> str:
        return "".join(rng.choice("aaaabc") for _ in range(3))

    def check(self, case: str) -> list[str]:
        if "b" in case:
            raise KeyError("missing")  # the planted crash
        if "c" in case:
            raise Finding("planted oracle failure", case)
        return ["fine"]

    def dump(self, case: str) -> dict:
        return {"text": case}

    def load(self, raw: dict) -> str:
        return raw["text"]


def test_engine_reports_crashes_and_oracle_failures_with_a_replayable_reproducer(tmp_path, monkeypatch):
    result = fuzzcore.run_range(_Planted(), 1, 0, 200)
    kinds = sorted(result.counts)
    assert len(kinds) == 2 and kinds[1] == "planted oracle failure"
    assert kinds[0].startswith("exception KeyError in ") and kinds[0].endswith("(check)")
    assert result.outcomes["fine"] + sum(result.counts.values()) == 200
    crash = result.findings[kinds[0]]
    path = fuzzcore.write_reproducer(str(tmp_path), 1, "planted", crash, result.counts[kinds[0]])
    doc = json.loads(pathlib.Path(path).read_text())
    assert "b" in doc["case"]["text"] and "KeyError" in doc["traceback"]
    monkeypatch.setitem(TARGETS, "planted", _Planted)
    _, case, _, again = fuzzcore.replay(path)
    assert case == doc["case"]["text"] and again["kind"] == kinds[0]


def test_inputs_depend_only_on_seed_target_and_index():
    t = TARGETS["wire-ip"]()
    a = [t.dump(t.generate(fuzzcore.case_rng(1, "wire-ip", i))) for i in (5, 6, 7)]
    b = [t.dump(t.generate(fuzzcore.case_rng(1, "wire-ip", i))) for i in (7, 6, 5)][::-1]
    assert a == b and a[0] != a[1]
    assert t.dump(t.generate(fuzzcore.case_rng(2, "wire-ip", 5))) != a[0]


@pytest.mark.parametrize("name", ["wire-payload", "config"])
def test_coverage_guided_driver_runs_from_the_seed_corpus(name, tmp_path):
    """covfuzz.py (atheris) seeds its corpus from the engine, maps bytes to inputs, runs the oracle."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "covfuzz.py"), name, "--out", str(tmp_path), "-runs=400", "-seed=1"],
        capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "INITED cov:" in proc.stderr and "Done 400 runs" in proc.stderr, proc.stderr[-2000:]
    assert len(list((tmp_path / f"corpus-{name}").iterdir())) >= 300
