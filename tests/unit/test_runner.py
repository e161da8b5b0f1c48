"""Runner executes the state machine's actions against the kernel in a safe order.

Kernel and sockets are replaced by a recorder, so the order of every netlink call and every
frame sent is visible: the vMAC comes up with the VIPs, then the first advertisement leaves and
then the gratuitous ARPs / unsolicited NAs (RFC 9568 §8.1.2-5, §8.2.2-7). No frame leaves the vMAC
before the VIPs are there: it moves the switch's FDB entry, and with it the clients' packets.
"""
from __future__ import annotations

import ipaddress
from unittest import mock

import pytest

from vmacd.config.load import load_text
from vmacd.control.metrics import Metrics
from vmacd.core import wire
from vmacd.core.events import AdvertReceived, Startup
from vmacd.core.fsm import State
from vmacd.linux.links import Vmac
from vmacd.linux.procs import Processes
from vmacd.loop import Loop
from vmacd.runner import Runner

CONF = """
[global]
node = "r1"
metrics_listen = ""
[[instance]]
name = "lan"
interface = "eth0"
vrid = 51
priority = 100
advert_interval = "100ms"
virtual_ips = [{vips}]
garp_repeat = 1
{extra}
"""


class Recorder:
    """Stands in for the netlink manager, the AF_PACKET sender and the socket; logs in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.ifindex = 3

    def claim(self, target, vips, drop=()):
        self.calls.append(("claim", tuple(vips)))

    def release(self, target, vips):
        self.calls.append(("release",))

    def delete(self, vmac):
        self.calls.append(("delete",))

    def send(self, frame: bytes):
        ethertype = frame[12:14]
        if ethertype == b"\x08\x06":
            kind = "arp"
        elif ethertype == b"\x86\xdd" and frame[20] == 58:
            kind = "na"
        else:
            kind = "advert"
        self.calls.append(("send", kind))

    def send_unicast(self, payload, peer, ifindex):
        self.calls.append(("unicast", peer))

    def close(self):
        pass


class Deps:
    def __init__(self, loop: Loop, rec: Recorder) -> None:
        self.loop = loop
        self.links = rec
        self.metrics = Metrics()
        self.procs = Processes(loop)
        self.guardian = None
        self.accept_filter = mock.Mock()
        self.owner_filter = mock.Mock()
        self.notify_script = None
        self.drained = 0

    def drain(self) -> None:
        self.drained += 1

    def state_changed(self, runner) -> None:
        pass


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


def make(loop: Loop, vips: str, primary: str, extra: str = "", own=()) -> tuple[Runner, Recorder]:
    cfg = load_text(CONF.format(vips=vips, extra=extra), read_files=False).instances[0]
    rec = Recorder()
    fam = 6 if ":" in primary else 4
    vmac = Vmac("lan", "vm2.51.4", 3, "eth0", 51, fam, f"00:00:5e:00:0{fam // 2 - 1}:33"
                if fam == 4 else "00:00:5e:00:02:33", "bridge")
    with mock.patch("vmacd.runner.PacketSender", return_value=rec):
        runner = Runner(cfg, Deps(loop, rec), parent_index=2, parent_mac="02:00:00:00:00:0b",
                        primary=ipaddress.ip_address(primary),
                        own=frozenset(ipaddress.ip_address(a) for a in (primary, *own)),
                        vmac=vmac, sock=rec)
    return runner, rec


def take_over(runner: Runner) -> None:
    runner.handle(Startup())
    runner.execute(runner.router.handle_timer(runner.router.get_timer()))   # master down


@pytest.mark.rfc("9568-8.1.2-5", "holds")
@pytest.mark.rfc("9568-8.1.2-4", "holds")
@pytest.mark.rfc("9568-6.4.2-8", "holds")
def test_ipv4_takeover_order_vmac_and_vips_then_advert_then_garp(loop):
    runner, rec = make(loop, '"192.0.2.254/24", "192.0.2.253/24"', "192.0.2.11")
    take_over(runner)
    assert rec.calls == [("claim", ("192.0.2.254/24", "192.0.2.253/24")), ("send", "advert"),
                         ("send", "arp"), ("send", "arp")]


@pytest.mark.rfc("9568-8.2.2-7", "holds")
@pytest.mark.rfc("9568-8.2.2-6", "holds")
@pytest.mark.rfc("9568-6.4.2-10", "holds")
def test_ipv6_takeover_order_vmac_and_vips_then_advert_then_na(loop):
    runner, rec = make(loop, '"fe80::1/64", "2001:db8::fe/64"', "fe80::b")
    take_over(runner)
    assert rec.calls == [("claim", ("fe80::1/64", "2001:db8::fe/64")), ("send", "advert"),
                         ("send", "na"), ("send", "na")]


@pytest.mark.rfc("9568-8.1.2-5", "refused")
@pytest.mark.rfc("9568-8.2.2-7", "refused")
def test_no_announcement_once_the_vips_are_gone(loop):
    """A repeat GARP due after the router lost mastership is not sent: no ARP for an address
    the box no longer has."""
    runner, rec = make(loop, '"192.0.2.254/24"', "192.0.2.11")
    take_over(runner)
    frames = runner.out.announce_frames()
    higher = wire.Advertisement(3, 51, 200, 10, (ipaddress.ip_address("192.0.2.254"),),
                                src=ipaddress.ip_address("192.0.2.12"))
    runner.execute(runner.router.handle(AdvertReceived(higher), loop.time()))
    rec.calls.clear()
    runner.out.send_frames(frames)              # what a pending repeat would do
    assert rec.calls == []


def _packet(prio: int, src: str = "192.0.2.12") -> bytes:
    adv = wire.Advertisement(3, 51, prio, 10, (ipaddress.ip_address("192.0.2.254"),))
    return wire.build_ip_packet(adv, src=src, dst="224.0.0.18")


def test_a_repeated_advert_takes_the_short_path_and_still_counts(loop):
    runner, _rec = make(loop, '"192.0.2.254/24"', "192.0.2.11")
    runner.handle(Startup())
    pkt = _packet(200)
    with mock.patch("vmacd.core.wire.decode", wraps=wire.decode) as decode:
        for _ in range(5):
            runner.intake.receive4(pkt, 20, loop.time())
    assert decode.call_count == 1                        # the other four were repeats
    assert runner.metrics.n_received == 5
    assert runner.router.state is State.BACKUP and runner.router.master_seen.priority == 200


def test_a_stalled_backup_reads_its_sockets_before_taking_over(loop):
    runner, _rec = make(loop, '"192.0.2.254/24"', "192.0.2.11")
    runner.handle(Startup())
    runner.intake.receive4(_packet(200), 20, loop.time())
    deps = runner.d
    runner._timer = None
    with mock.patch.object(loop, "time", return_value=runner.router.get_timer() + 0.001):
        deps.drain = lambda: runner.intake.receive4(_packet(200, "192.0.2.12"), 20, loop.time())  # queued
        runner.on_timer()
    assert runner.router.state is State.BACKUP           # the queued advert kept it backup


def test_our_own_source_address_is_a_replay_and_the_master_reasserts(loop):
    runner, rec = make(loop, '"192.0.2.254/24"', "192.0.2.11")
    take_over(runner)
    rec.calls.clear()
    runner.intake.receive4(_packet(100, src="192.0.2.11"), 20, loop.time())
    assert rec.calls == [("send", "advert")]             # one frame from the vMAC at once
    for _ in range(100):                                 # a flood: the rate limit holds
        runner.intake.receive4(_packet(100, src="192.0.2.11"), 20, loop.time())
    assert 1 < len(rec.calls) <= 25


def test_unicast_peers_skip_this_box_own_addresses(loop):
    runner, rec = make(loop, '"192.0.2.254/24"', "192.0.2.11",
                       'unicast_peers = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]',
                       own=("192.0.2.13",))
    take_over(runner)
    assert [c for c in rec.calls if c[0] == "unicast"] == [("unicast", "192.0.2.12")]
