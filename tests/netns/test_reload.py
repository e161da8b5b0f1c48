"""Reload as a diff: an instance whose interface does not exist yet waits for it (and starts when
it appears); a new instance is started without disturbing the running one."""
from __future__ import annotations

from vmaclab import impls
from vmaclab.util import wait_until


def test_reload_waits_for_a_missing_interface_and_adds_an_instance(lab):
    lb = lab("pair")
    r1 = impls.get("vmacd")().configure(lb, "r1", "lan", 51, lb.vip("lan"), 200, 100)
    r1.start()
    wait_until(lambda: r1.state() == "master", 3, what="r1 master")
    base = r1.conf_path.read_text()
    extra = ('\n[[instance]]\nname = "{name}"\ninterface = "{iface}"\nvrid = 52\n'
             'advert_interval = "100ms"\nvirtual_ips = ["192.0.2.200/24"]\naccept = true\n')
    r1.conf_path.write_text(base + extra.format(name="two", iface="nope0"))
    reply = r1.control({"cmd": "reload"})
    assert reply["ok"] and "does not exist" in reply["waiting"]["two"], reply
    two = next(i for i in r1.status()["instances"] if i["name"] == "two")
    assert two["state"] == "init" and "nope0" in two["waiting"]
    history = r1.control({"cmd": "history"})["history"]
    r1.conf_path.write_text(base + extra.format(name="two", iface=lb.ifname("r1", "lan")))
    reply = r1.control({"cmd": "reload"})
    assert reply["ok"] and reply["restarted"] == ["two"] and reply["unchanged"] == ["lan"], reply
    wait_until(lambda: {i["name"]: i["state"] for i in r1.status()["instances"]}
               == {"lan": "master", "two": "master"}, 3, what="two becomes master")
    lan_moves = [h for h in r1.control({"cmd": "history"})["history"] if h["instance"] == "lan"]
    assert lan_moves == [h for h in history if h["instance"] == "lan"]     # no flap
