"""Virtual MAC, gratuitous ARP and unsolicited NA frames (scapy as the oracle for the checksum)."""
from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from vmacd.core.l2 import garp_frame, unsolicited_na_frame, vmac
from vmacd.core.wire import UsageError


@pytest.mark.rfc("9568-7.3-1", "holds")
@pytest.mark.rfc("9568-7.3-2", "holds")
def test_vmac_blocks():
    assert vmac(10, 4) == "00:00:5e:00:01:0a"
    assert vmac(255, 6) == "00:00:5e:00:02:ff"
    assert vmac(1, 4) == "00:00:5e:00:01:01"


@pytest.mark.rfc("9568-7.3-1", "refused")
@pytest.mark.rfc("9568-7.3-2", "refused")
def test_vmac_never_crosses_blocks_and_refuses_bad_input():
    assert all(vmac(v, 4).startswith("00:00:5e:00:01:") for v in range(1, 256))
    assert all(vmac(v, 6).startswith("00:00:5e:00:02:") for v in range(1, 256))
    for bad in ((0, 4), (256, 4), (1, 5), (1, 2)):
        with pytest.raises(UsageError):
            vmac(*bad)


@pytest.mark.rfc("9568-6.4.1-3", "holds")
@pytest.mark.rfc("9568-6.4.2-8", "holds")
def test_garp_fields():
    vip = ipaddress.IPv4Address("192.0.2.1")
    f = Ether(garp_frame(vmac(10, 4), vip))
    assert f.dst == "ff:ff:ff:ff:ff:ff" and f.src == "00:00:5e:00:01:0a" and f.type == 0x0806
    a = f[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.pdst, a.hwdst) == (1, "00:00:5e:00:01:0a", "192.0.2.1",
                                                         "192.0.2.1", "00:00:5e:00:01:0a")


@pytest.mark.rfc("9568-6.4.2-8", "refused")
def test_garp_never_puts_a_mac_in_the_ip_fields_and_is_cached():
    f = garp_frame(vmac(10, 4), ipaddress.IPv4Address("192.0.2.1"))
    assert f[28:32] == f[38:42] == bytes([192, 0, 2, 1])
    assert garp_frame(vmac(10, 4), ipaddress.IPv4Address("192.0.2.1")) is f
    with pytest.raises(UsageError):
        garp_frame("not-a-mac", ipaddress.IPv4Address("192.0.2.1"))


@pytest.mark.rfc("9568-6.4.1-4", "holds")
@pytest.mark.rfc("9568-6.4.2-10", "holds")
@pytest.mark.rfc("9568-6.4.3-4", "holds")
def test_unsolicited_na_fields_and_checksum():
    src, vip = ipaddress.IPv6Address("fe80::2"), ipaddress.IPv6Address("2001:db8::1")
    raw = unsolicited_na_frame(vmac(5, 6), src, vip)
    f = Ether(raw)
    assert f.dst == "33:33:00:00:00:01" and f.src == "00:00:5e:00:02:05"
    assert (f[IPv6].dst, f[IPv6].src, f[IPv6].hlim, f[IPv6].nh) == ("ff02::1", "fe80::2", 255, 58)
    na = f[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (1, 0, 1, "2001:db8::1")
    assert f[ICMPv6NDOptDstLLAddr].lladdr == "00:00:5e:00:02:05"
    ours = na.cksum
    del f[ICMPv6ND_NA].cksum
    assert Ether(bytes(f))[ICMPv6ND_NA].cksum == ours


@pytest.mark.rfc("9568-6.4.1-4", "refused")
@pytest.mark.rfc("9568-6.4.2-10", "refused")
def test_unsolicited_na_refuses_bad_addresses():
    vip = ipaddress.IPv6Address("2001:db8::1")
    with pytest.raises(UsageError, match="link-local"):
        unsolicited_na_frame(vmac(5, 6), ipaddress.IPv6Address("2001:db8::2"), vip)
    with pytest.raises(UsageError, match="unicast"):
        unsolicited_na_frame(vmac(5, 6), ipaddress.IPv6Address("fe80::2"), ipaddress.IPv6Address("ff02::1"))
    # S=0 and O=1 always: the flag word is fixed
    raw = unsolicited_na_frame(vmac(5, 6), ipaddress.IPv6Address("fe80::2"), vip)
    assert raw[14 + 40 + 4] == 0xA0
