"""Sync groups (docs/config.md): instances in a group move together. Two routers between a LAN and an
uplink run one instance per side in one group; when the master's uplink goes down, its uplink
instance faults and its LAN instance must let go too, so the other router carries both."""
from __future__ import annotations

import json

from vmaclab.faults import fault
from vmaclab.impls.vmacd import Vmacd
from vmaclab.util import wait_until


class TwoSided(Vmacd):
    """The lab's vmacd router with two instances (lan VRID 51, up VRID 52) in one sync group."""

    def render(self) -> str:
        c, lab = self.cfg, self.lab
        head = super().render().split("[[instance]]")[0]
        out = [head]
        for name, lan, vrid in (("lan", "lan", 51), ("up", "up", 52)):
            out += ["[[instance]]", f'name = "{name}"', f'interface = "{lab.ifname(c.node, lan)}"',
                    f"vrid = {vrid}", f"priority = {c.priority}", 'advert_interval = "100ms"',
                    f'virtual_ips = ["{lab.vip(lan)}/24"]', "accept = true", ""]
        out += ["[sync_group.router]", 'instances = ["lan", "up"]', ""]
        return "\n".join(out)

    def states(self) -> dict[str, str]:
        reply = self.status() or {"instances": []}
        return {i["name"]: i["state"] for i in reply["instances"]}


def test_one_side_faults_and_the_group_moves_together(lab):
    lb = lab("twolan")
    r1 = TwoSided().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100)
    r2 = TwoSided().configure(lb, "r2", "lan", 51, lb.vip("lan"), 100, 100)
    r1.start()
    r2.start()
    wait_until(lambda: r1.states() == {"lan": "master", "up": "master"}
               and r2.states() == {"lan": "backup", "up": "backup"}, 5, what="r1 master of both")
    fault(lb, r1, "linkdown", lan="up")
    wait_until(lambda: r2.states() == {"lan": "master", "up": "master"}, 5, what="r2 takes both")
    assert r1.states() == {"lan": "fault", "up": "fault"}
    addrs = json.loads(lb.run("r1", ["ip", "-4", "-j", "addr"]).stdout)
    held = {a["local"] for i in addrs for a in i.get("addr_info", [])}
    assert lb.vip("lan") not in held and lb.vip("up") not in held
    history = r1.control({"cmd": "history"})["history"]
    lan_fault = [h for h in history if h["instance"] == "lan" and h["to"] == "fault"]
    assert lan_fault and "sync group router" in lan_fault[-1]["reason"]
    fault(lb, r1, "linkup", lan="up")
    wait_until(lambda: r1.states() == {"lan": "master", "up": "master"}, 5, what="r1 preempts back")


class Tracking(Vmacd):
    """One LAN instance that tracks the uplink interface with weight -150 (keepalived style)."""

    def render(self) -> str:
        up_if = self.lab.ifname(self.cfg.node, "up")
        return super().render().replace(
            "accept = true", f'accept = true\ntrack_interfaces = [{{ name = "{up_if}", weight = -150 }}]')


def test_tracked_interface_weight_lowers_priority_and_backup_preempts(lab):
    lb = lab("twolan")
    r1 = Tracking().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100)
    r2 = Tracking().configure(lb, "r2", "lan", 51, lb.vip("lan"), 100, 100)
    r1.start()
    r2.start()
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5, what="election")
    fault(lb, r1, "linkdown", lan="up")
    wait_until(lambda: (r1.state(), r2.state()) == ("backup", "master"), 5, what="r2 preempts")
    inst = r1.status()["instances"][0]
    assert (inst["priority"], inst["effective_priority"]) == (200, 50)
    assert inst["trackers"] == {f"if:{lb.ifname('r1', 'up')}": False}
    fault(lb, r1, "linkup", lan="up")
    wait_until(lambda: (r1.state(), r2.state()) == ("master", "backup"), 5, what="r1 back")
