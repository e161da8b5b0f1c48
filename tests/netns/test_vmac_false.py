"""`vmac = false` (keepalived's default mode, a documented departure): VIPs on the parent with its
own MAC. Two instances share one parent: one leaving mastership removes its own VIP only."""
from __future__ import annotations

import json

from vmaclab.impls.vmacd import Vmacd
from vmaclab.util import wait_until


class TwoOnOneParent(Vmacd):
    """Two vmac = false instances (VRID 51 and 52) on the same LAN interface."""

    def render(self) -> str:
        c, lab = self.cfg, self.lab
        head = super().render().split("[[instance]]")[0]
        out = [head]
        prio = {"a": c.priority, "b": c.extra.get("prio_b", c.priority)}
        for name, vrid, vip in (("a", 51, "192.0.2.254"), ("b", 52, "192.0.2.253")):
            out += ["[[instance]]", f'name = "{name}"', f'interface = "{lab.ifname(c.node, c.lan)}"',
                    f"vrid = {vrid}", f"priority = {prio[name]}", 'advert_interval = "100ms"',
                    f'virtual_ips = ["{vip}/24"]', "vmac = false", "accept = true", ""]
        return "\n".join(out)

    def states(self) -> dict[str, str]:
        return {i["name"]: i["state"] for i in (self.status() or {"instances": []})["instances"]}


def _addrs(lab, node: str) -> set[str]:
    info = json.loads(lab.run(node, ["ip", "-4", "-j", "addr", "show", "dev",
                                     lab.ifname(node, "lan")]).stdout)
    return {a["local"] for a in info[0]["addr_info"]}


def test_vmac_false_release_keeps_the_other_instances_vip(lab):
    lb = lab("pair")
    r1 = TwoOnOneParent().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100, vmac=False,
                                    prio_b=200)
    r2 = TwoOnOneParent().configure(lb, "r2", "lan", 51, lb.vip("lan"), 100, 100, vmac=False,
                                    prio_b=100)
    r1.start()
    r2.start()
    wait_until(lambda: r1.states() == {"a": "master", "b": "master"}, 5, what="r1 master of both")
    assert {"192.0.2.254", "192.0.2.253"} <= _addrs(lb, "r1")
    links = json.loads(lb.run("r1", ["ip", "-j", "-d", "link", "show", "type", "macvlan"]).stdout)
    assert links == []                                      # no vMAC device in this mode
    # instance a leaves mastership (maintenance): b's VIP must stay on the shared parent
    assert r1.control({"cmd": "maintenance", "instance": "a", "on": True})["ok"]
    wait_until(lambda: r1.states() == {"a": "backup", "b": "master"}, 5, what="a hands over")
    held = _addrs(lb, "r1")
    assert "192.0.2.254" not in held and "192.0.2.253" in held, held
    assert "192.0.2.254" in _addrs(lb, "r2")
