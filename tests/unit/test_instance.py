"""InstanceRunner executes the state machine's actions against the kernel in a safe order.

Kernel and sockets are replaced by a recorder, so the order of every netlink call and every
frame sent is visible: the vMAC comes up with the VIPs, then the first advertisement leaves and
then the gratuitous ARPs / unsolicited NAs (RFC 9568 §8.1.2-5, §8.2.2-7). No frame leaves the vMAC
before the VIPs are there: it moves the switch's FDB entry, and with it the clients' packets.
"""
from __future__ import annotations

import asyncio
import ipaddress
from unittest import mock

import pytest

from vmacd.config.load import load_text
from vmacd.control.metrics import Metrics
from vmacd.core.events import Startup
from vmacd.instance import InstanceRunner, Wiring

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
accept = true
garp_repeat = 1
"""


class Recorder:
    """Stands in for the netlink manager and the AF_PACKET sender; logs every call in order."""

    def __init__(self, primary: str) -> None:
        self.calls: list[tuple] = []
        self.primary = primary

    # netlink manager
    def ifindex(self, name):
        return 2

    def primary_address(self, idx, fam):
        return self.primary

    def create(self, *a, **kw):
        return mock.Mock(ifindex=3, mac="00:00:5e:00:01:33" if ":" not in self.primary
                         else "00:00:5e:00:02:33", ifname="vm2.51")

    def prepare_vips(self, vips):
        pass

    def claim(self, target, vips):
        self.calls.append(("claim", tuple(vips)))

    def release(self, target):
        self.calls.append(("release",))

    # sender
    def send(self, frame: bytes):
        ethertype = frame[12:14]
        if ethertype == b"\x08\x06":
            kind = "arp"
        elif ethertype == b"\x86\xdd" and frame[20] == 58:
            kind = "na"
        else:
            kind = "advert"
        self.calls.append(("send", kind))


def _runner(vips: str, primary: str) -> tuple[InstanceRunner, Recorder, asyncio.AbstractEventLoop]:
    cfg = load_text(CONF.format(vips=vips), read_files=False).instances[0]
    loop = asyncio.new_event_loop()
    rec = Recorder(primary)
    w = Wiring(loop=loop, vmacs=rec, metrics=Metrics(), procs=mock.Mock(),
               unicast_send=lambda *a: True, on_change=lambda r: None)
    with mock.patch("vmacd.linux.link.PacketSender", return_value=rec):
        runner = InstanceRunner(cfg, w)
        runner.setup()
    return runner, rec, loop


@pytest.mark.rfc("9568-8.1.2-5", "holds")
@pytest.mark.rfc("9568-8.1.2-4", "holds")
@pytest.mark.rfc("9568-6.4.2-8", "holds")
def test_ipv4_takeover_order_vmac_and_vips_then_advert_then_garp():
    runner, rec, loop = _runner('"192.0.2.254/24", "192.0.2.253/24"', "192.0.2.11")
    runner.handle(Startup())
    runner.execute(runner.router.handle_timer(runner.router.get_timer()))   # master down
    assert rec.calls == [("claim", ("192.0.2.254/24", "192.0.2.253/24")), ("send", "advert"),
                         ("send", "arp"), ("send", "arp")]
    loop.close()


@pytest.mark.rfc("9568-8.2.2-7", "holds")
@pytest.mark.rfc("9568-8.2.2-6", "holds")
@pytest.mark.rfc("9568-6.4.2-10", "holds")
def test_ipv6_takeover_order_vmac_and_vips_then_advert_then_na():
    runner, rec, loop = _runner('"fe80::1/64", "2001:db8::fe/64"', "fe80::b")
    runner.handle(Startup())
    runner.execute(runner.router.handle_timer(runner.router.get_timer()))
    assert rec.calls == [("claim", ("fe80::1/64", "2001:db8::fe/64")), ("send", "advert"),
                         ("send", "na"), ("send", "na")]
    loop.close()


@pytest.mark.rfc("9568-8.1.2-5", "refused")
@pytest.mark.rfc("9568-8.2.2-7", "refused")
def test_no_announcement_once_the_vips_are_gone():
    """A repeat GARP due after the router lost mastership is not sent: no ARP for an address
    the box no longer has."""
    runner, rec, loop = _runner('"192.0.2.254/24"', "192.0.2.11")
    runner.handle(Startup())
    runner.execute(runner.router.handle_timer(runner.router.get_timer()))
    frames = runner.announce_frames()
    from vmacd.core.events import AdvertReceived
    from vmacd.core.wire import Advertisement
    higher = Advertisement(3, 51, 200, 10, (ipaddress.ip_address("192.0.2.254"),),
                           src=ipaddress.ip_address("192.0.2.12"))
    runner.execute(runner.router.handle(AdvertReceived(higher), loop.time()))
    rec.calls.clear()
    runner._send_frames(frames)                 # what a pending repeat would do
    assert rec.calls == []
    loop.close()
