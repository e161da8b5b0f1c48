"""Names vulture cannot see used, each used at run time in a way a static scan misses.

Read by the dead-code check (`make lint`), never imported. Every entry says who uses it.
"""
from vmaclab.impls import frr
from vmaclab.record import RunRecord

from vmacd.config import model
from vmacd.core import fsm, wire

_ = (
    # the state machine dispatches by name: fsm.EVENT_HANDLERS maps (state, input type) to a method
    fsm.VirtualRouter._on_startup,
    fsm.VirtualRouter._on_shutdown_idle,
    fsm.VirtualRouter._on_shutdown_master,
    fsm.VirtualRouter._on_advert_backup,
    fsm.VirtualRouter._on_advert_master,
    fsm.VirtualRouter._on_condition,
    fsm.VirtualRouter._ignore,
    # module __getattr__ (PEP 562): `from vmacd.core.wire import AuthSpec` resolves through it
    wire.__getattr__,
    # a TypedDict key, read as ah["verified"] when the auth info of an AH packet is reported
    wire.AhInfo.verified,
    # set at load and compared by config.diff through dataclass equality: an instance that moves to
    # another sync group is rebuilt on reload
    model.Instance.sync_group,
    # vmaclab.impls imports the built-in implementations by "module:Class" string
    frr.Frr,
    # written into every run record by dataclasses.asdict() (vmac-lab bench --json, timelines)
    RunRecord.fault_node,
)
