"""Reload as a diff, on a live master with a client probing its VIP: each kind of change that
docs/operations.md lists as "applied in place" takes effect without a transition, without a lost
probe, with the history and the counters kept; the backup never moves either.
"""
from __future__ import annotations

import re

from daemon_util import (
    addresses,
    fleet,
    metric_value,
    metrics_text,
    probe,
    sleep_observing,
    vmacctl,
)
from vmaclab.util import wait_until

__all__ = ["fleet"]

KEY_A, KEY_B = "0123456789abcdef0123", "fedcba9876543210fedc"


def _reload(lab, r) -> dict:
    import json
    cp = vmacctl(lab, r.node, r, "reload", "--json", check=False)
    reply = json.loads(cp.stdout)
    assert cp.returncode == 0 and reply["ok"], (cp.stdout, cp.stderr)
    return reply


def _edit(r, old: str, new: str) -> None:
    text = r.conf_path.read_text()
    assert old in text, (old, text)
    r.conf_path.write_text(text.replace(old, new, 1))


def test_changes_applied_in_place_lose_nothing_and_keep_the_history(fleet, tmp_path) -> None:
    lab = fleet.lab
    vip = lab.vip("lan")
    marker = lab.workdir("r1") / "svc-up"
    auth = {"type": "hmac-sha256", "key": KEY_A}
    rs = fleet.elect([("r1", 200), ("r2", 100)], master="r1", auth=auth, garp_repeat=3)
    r1, r2 = rs["r1"], rs["r2"]
    fleet.echo(["r1", "r2"])
    prober = probe(fleet)
    sleep_observing(0.5)
    history = {r.node: r.control({"cmd": "history"})["history"] for r in (r1, r2)}
    sent_before = metric_value(metrics_text(lab, "r1"), "vmacd_adverts_sent_total",
                               vrrp_instance="lan")

    # a VIP added: on the master at once (and announced), the old one untouched
    _edit(r1, f'virtual_ips = ["{vip}/24"]', f'virtual_ips = ["{vip}/24", "192.0.2.201/24"]')
    _edit(r2, f'virtual_ips = ["{vip}/24"]', f'virtual_ips = ["{vip}/24", "192.0.2.201/24"]')
    assert _reload(lab, r2)["updated"] == ["lan"]
    assert _reload(lab, r1)["updated"] == ["lan"]
    wait_until(lambda: "192.0.2.201" in addresses(lab, "r1"), 2.0, what="added VIP on r1")
    assert vip in addresses(lab, "r1") and "192.0.2.201" not in addresses(lab, "r2")

    # priority and advert_interval: advertised at once
    _edit(r1, "priority = 200", "priority = 220")
    _edit(r1, 'advert_interval = "100ms"', 'advert_interval = "50ms"')
    assert _reload(lab, r1)["updated"] == ["lan"]
    inst = r1.status()["instances"][0]
    assert inst["priority"] == 220 and inst["effective_priority"] == 220
    wait_until(lambda: r2.status()["instances"][0]["master"] == {
        "src": inst["master"]["src"], "priority": 220, "interval_ms": 50}, 2.0,
        what="r2 hears priority 220 every 50 ms")

    # a resource added: the master starts it; a tracker added: followed from now on
    text = r1.conf_path.read_text()
    text = text.replace("garp_repeat = 3", 'garp_repeat = 5\nresources = ["svc"]\n'
                        'track_files = [{ path = "' + str(tmp_path / "w") + '", weight = 1 }]')
    text += ('\n[resource.svc]\nstart = ["/usr/bin/touch", "' + str(marker) + '"]\n'
             'stop = ["/usr/bin/rm", "-f", "' + str(marker) + '"]\ntimeout = "5s"\n')
    (tmp_path / "w").write_text("5\n")
    r1.conf_path.write_text(text)
    assert _reload(lab, r1)["updated"] == ["lan"]
    wait_until(marker.exists, 3.0, what=f"the added resource started on the master "
               f"({r1.status()['instances'][0]['resources']}; log: {r1.log_tail(8)})")
    wait_until(lambda: r1.status()["instances"][0]["effective_priority"] == 225, 3.0,
               what="track file weight applied")

    # the auth key, changed on both nodes (the backup first)
    for r in (r2, r1):
        _edit(r, KEY_A, KEY_B)
        assert _reload(lab, r)["updated"] == ["lan"]

    sleep_observing(1.0)                           # several adverts under the new settings
    summary = prober.stop()
    assert summary.lost == 0, summary
    assert (r1.state(), r2.state()) == ("master", "backup")
    for r in (r1, r2):
        assert r.control({"cmd": "history"})["history"] == history[r.node], r.node
    text = metrics_text(lab, "r1")
    assert metric_value(text, "vmacd_adverts_sent_total", vrrp_instance="lan") > sent_before
    assert metric_value(text, "vmacd_transitions_total", vrrp_instance="lan", to="master") == 1
    drops = metrics_text(lab, "r2")
    assert metric_value(drops, "vmacd_packets_dropped_total", vrrp_instance="lan",
                        reason="auth") <= 3     # at most the adverts between the two reloads
    assert marker.exists()

    # accept off: in place too (the master now drops traffic to its VIPs, as RFC 9568 says)
    _edit(r1, "accept = true", "accept = false")
    assert _reload(lab, r1)["updated"] == ["lan"]
    rules = lab.run("r1", ["nft", "list", "ruleset"]).stdout
    assert re.search(r"ip daddr .* drop", rules), rules
    sleep_observing(0.3)
    assert r1.control({"cmd": "history"})["history"] == history["r1"]
    assert r1.state() == "master"
