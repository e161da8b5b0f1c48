"""Names vulture cannot see used, each used at run time in a way a static scan misses.

Read by the dead-code check (`make lint`), never imported. Every entry says who uses it.
"""
import decimal

from vmaclab.impls import frr
from vmaclab.record import RunRecord

from vmacd.config import model
from vmacd.control import framing, metrics
from vmacd.core import peers, wire
from vmacd.linux import links

_ = (
    # a TypedDict key, read as ah["verified"] when the auth info of an AH packet is reported
    wire.AhInfo.verified,
    # TypedDict keys of the peer rows of `vmacctl status --json`: PeerTable.status() writes them
    # as dict literals, the JSON's readers (vmacctl users, tests/unit/test_peers.py) read them
    peers.AdvertShown.interval_ms,
    peers.RefusalShown.age_s,
    peers.PeerStatus.age_s,
    peers.PeerStatus.last_refusal,
    peers.PeerStatus.address_list,
    # set at load and compared by reload.plan through dataclass equality: an instance that moves to
    # another sync group is rebuilt on reload
    model.Instance.sync_group,
    # set at load (config/instance.py checks the IPv6 VIP list against it) and compared, like
    # every field, through dataclass equality (reload.plan) and dataclasses.fields()
    # (reload.changed_keys): a reload that changes it is seen and logged
    model.Instance.ipv6_link_local_first,
    # written to the decimal context that config.durations.parse_us() computes in: the decimal
    # module reads it (the precision that keeps every digit of a duration exact)
    decimal.Context.prec,
    # the documented bound of LineFramer (at most max_line + 1 bytes held), checked through it by
    # tests/unit/test_control_framing.py and the control-framing fuzz oracle (tests/fuzz)
    framing.LineFramer.buffered,
    # how many steps a render took: reported by tools/bench_metrics.py ("render steps") and
    # checked by tests/unit/test_metrics.py (a render of many instances is really stepped)
    metrics.Render.steps,
    # the one-device form of Links.create_many(): the netns tests of the linux layer build their
    # vMACs with it (tests/netns/test_linux_*.py, test_cli_cleanup.py)
    links.Links.create,
    # vmaclab.impls imports the built-in implementations by "module:Class" string
    frr.Frr,
    # written into every run record by dataclasses.asdict() (vmac-lab bench --json, timelines)
    RunRecord.fault_node,
)
