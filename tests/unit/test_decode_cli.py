"""`vmacd decode`: hex and captures (pcap, pcapng, SLL) built by scapy; exit codes 0 / 1 / 2."""
from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import subprocess
import sys

import pytest
from scapy.all import IP, UDP, Ether, IPv6, raw, wrpcap
from scapy.layers.l2 import CookedLinux
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import PcapNgWriter

from vmacd.cli import decode as cli
from vmacd.cli.main import COMMANDS
from vmacd.core.auth import AuthSpec
from vmacd.core.wire import Advertisement, build_ip_packet

G4 = "224.0.0.18"
GOOD4 = (IP(src="192.0.2.2", dst=G4, ttl=255)
         / VRRPv3(vrid=51, priority=150, adv=100, addrlist=["192.0.2.254"]))
GOOD6 = IPv6(src="fe80::2", dst="ff02::12", hlim=255) / VRRPv3(vrid=5, adv=10, addrlist=["fe80::1"])
GOOD2 = IP(src="192.0.2.3", dst=G4, ttl=255) / VRRP(vrid=7, adv=2, addrlist=["192.0.2.1"])
BADTTL = IP(src="192.0.2.2", dst=G4, ttl=1) / VRRPv3(vrid=51, addrlist=["192.0.2.254"])


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="vmacd decode")
    cli.setargs(parser)
    code = cli.cmdline(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_hex_packets_to_json_lines(capsys):
    code, objs, err = run([raw(GOOD4).hex(), "0x" + raw(GOOD6).hex(), raw(GOOD2).hex(" ")], capsys)
    assert code == 0 and err == ""
    assert objs[0] == {"version": 3, "type": 1, "vrid": 51, "priority": 150, "interval_ms": 1000,
                       "addresses": ["192.0.2.254"], "src": "192.0.2.2", "dst": G4, "ttl": 255,
                       "checksum": "pseudo-header", "auth": {"type": "none"}}
    assert (objs[1]["version"], objs[1]["interval_ms"], objs[1]["addresses"]) == (3, 100, ["fe80::1"])
    assert (objs[2]["version"], objs[2]["interval_ms"], objs[2]["checksum"]) == (2, 2000, "v2")


def test_refused_packet_gives_error_object_and_exit_1(capsys):
    code, objs, _ = run([raw(GOOD4).hex(), raw(BADTTL).hex()], capsys)
    assert code == 1
    assert objs[0]["vrid"] == 51
    assert objs[1]["error"] == "ttl" and "255" in objs[1]["detail"]


@pytest.mark.parametrize("argv,msg", [
    (["zz"], "hex"), (["abc"], "hex"), ([], "give HEX"),
    (["--pcap", "/nonexistent/x.pcap"], "cannot read"),
    (["--auth", "pass"], "1..8"), (["--key", "x", "00"], "need --auth"),
])
def test_unusable_calls_exit_2_with_message(argv, msg, capsys):
    code, objs, err = run(argv, capsys)
    assert code == 2 and objs == [] and msg in err and "Traceback" not in err


def test_not_a_capture_exits_2(tmp_path, capsys):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    code, _, err = run(["--pcap", str(junk)], capsys)
    assert code == 2 and "not a pcap" in err
    cut = tmp_path / "cut.pcap"
    wrpcap(str(cut), [Ether() / GOOD4])
    cut.write_bytes(cut.read_bytes()[:-5])
    code, _, err = run(["--pcap", str(cut)], capsys)
    assert code == 2 and "truncated" in err


def _frames():
    return [Ether() / GOOD4, Ether() / IP() / UDP(), Ether() / GOOD6, Ether() / GOOD2, Ether() / BADTTL]


def test_pcap_written_by_scapy(tmp_path, capsys):
    path = tmp_path / "cap.pcap"
    wrpcap(str(path), _frames())
    code, objs, _ = run(["--pcap", str(path)], capsys)
    assert code == 1
    assert [o["frame"] for o in objs] == [1, 3, 4, 5]            # the UDP frame is skipped
    assert [o.get("vrid") for o in objs[:3]] == [51, 5, 7] and objs[3]["error"] == "ttl"


def test_pcapng_and_linux_cooked_capture(tmp_path, capsys):
    path = tmp_path / "cap.pcapng"
    with PcapNgWriter(str(path)) as w:
        for f in _frames()[:4]:
            w.write(f)
    code, objs, _ = run(["--pcap", str(path)], capsys)
    assert code == 0 and [o["vrid"] for o in objs] == [51, 5, 7]
    sll = tmp_path / "sll.pcap"
    wrpcap(str(sll), [CookedLinux(proto=0x0800) / GOOD4, CookedLinux(proto=0x86DD) / GOOD6])
    code, objs, _ = run(["--pcap", str(sll)], capsys)
    assert code == 0 and [o["vrid"] for o in objs] == [51, 5]
    rawip = tmp_path / "raw.pcap"
    wrpcap(str(rawip), [GOOD4, GOOD2], linktype=101)
    code, objs, _ = run(["--pcap", str(rawip)], capsys)
    assert code == 0 and [o["vrid"] for o in objs] == [51, 7]


def test_ah_and_hmac_reported_and_verified(tmp_path, capsys):
    adv2 = Advertisement(2, 9, 100, 100, (ipaddress.ip_address("192.0.2.1"),))
    ah = build_ip_packet(adv2, src="192.0.2.3", dst=G4, auth=AuthSpec("ah", b"pw"), counter=3)
    path = tmp_path / "ah.pcap"
    wrpcap(str(path), [Ether() / IP(ah)])
    code, objs, _ = run(["--pcap", str(path)], capsys)
    assert code == 0 and objs[0]["auth"] == {"type": "ah", "spi": 0xC0000203, "seq": 3, "verified": False}
    code, objs, _ = run(["--auth", "ah", "--key", "pw", ah.hex()], capsys)
    assert code == 0 and objs[0]["auth"]["verified"] is True
    code, objs, _ = run(["--auth", "ah", "--key", "wrong", ah.hex()], capsys)
    assert code == 1 and objs[0]["error"] == "auth"
    key = tmp_path / "k"
    key.write_bytes(b"k" * 32 + b"\n")
    adv3 = Advertisement(3, 1, 100, 100, (ipaddress.ip_address("192.0.2.1"),))
    hm = build_ip_packet(adv3, src="192.0.2.3", dst=G4, auth=AuthSpec("hmac-sha256", b"k" * 32), counter=8)
    code, objs, _ = run(["--auth", "hmac-sha256", "--key-file", str(key), hm.hex()], capsys)
    assert code == 0
    assert objs[0]["auth"] == {"type": "hmac-sha256", "counter": 8, "key_id": 0, "verified": True}


def test_strict_checksum_flag(capsys):
    code, objs, _ = run(["--strict-checksum", "no-pseudo-header", raw(GOOD4).hex()], capsys)
    assert code == 1 and objs[0]["error"] == "checksum"
    code, objs, _ = run(["--strict-checksum", "pseudo-header", raw(GOOD4).hex()], capsys)
    assert code == 0


def test_ipv6_global_first_is_marked_and_strict_link_local_refuses_it(capsys):
    """keepalived's / FRR's usual IPv6 list decodes with "first_not_link_local": true (the key is
    absent otherwise); --strict-link-local gives RFC 9568 §7.1's drop, reason addresses."""
    ka = IPv6(src="fe80::2", dst="ff02::12", hlim=255) / VRRPv3(vrid=5, adv=10, addrlist=["2001:db8::fe"])
    code, objs, _ = run([raw(ka).hex(), raw(GOOD6).hex()], capsys)
    assert code == 0 and objs[0]["first_not_link_local"] is True and objs[0]["addresses"] == ["2001:db8::fe"]
    assert "first_not_link_local" not in objs[1]
    code, objs, _ = run(["--strict-link-local", raw(ka).hex(), raw(GOOD6).hex()], capsys)
    assert code == 1 and objs[0]["error"] == "addresses" and "2001:db8::fe" in objs[0]["detail"]
    assert objs[1]["addresses"] == ["fe80::1"]


def _all_commands_importable() -> bool:
    try:
        for mod in COMMANDS.values():
            importlib.import_module(mod)
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _all_commands_importable(),
                    reason="vmacd.cli.main imports every subcommand module; some do not exist yet")
def test_installed_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "vmacd", "decode", raw(GOOD4).hex()],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and json.loads(res.stdout)["vrid"] == 51
    bad = subprocess.run([sys.executable, "-m", "vmacd", "decode", "xyz"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
