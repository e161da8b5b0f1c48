"""RouterParams: the IPv6 address-list invariant the core keeps (the RFC rule is the config's)."""
from __future__ import annotations

import ipaddress

import pytest

from vmacd.core.params import RouterParams

ip = ipaddress.ip_address
SRC = ip("fe80::2")


def test_ipv6_lists_with_the_link_local_first_or_without_one():
    assert RouterParams(vrid=5, primary=SRC, vips=(ip("fe80::1"), ip("2001:db8::1"))).family == 6
    # keepalived's / FRR's usual list (config: ipv6_link_local_first = false)
    assert RouterParams(vrid=5, primary=SRC, vips=(ip("2001:db8::1"),)).vips == (ip("2001:db8::1"),)


def test_a_link_local_behind_a_global_address_is_refused():
    with pytest.raises(ValueError, match="vips: must be an IPv6 list with its link-local VIP first"):
        RouterParams(vrid=5, primary=SRC, vips=(ip("2001:db8::1"), ip("fe80::1")))
