"""The seed's two-node web cluster with Debian's lighttpd: nodes a and b, vmacd configured by
`vmacd import heartbeat` from the seed's ha.d, a client fetching http://192.0.2.254/ every 25 ms,
pinging it every 5 ms and watching its neighbour entry (vmaclab.cluster, vmaclab.webcluster).

Documented behaviour under test: resources run on the master only; a monitor failure or a start
failure makes the master hand over make-before-break (priority 0, VIPs kept until the successor is
heard) and stay out for failure_timeout; on a planned handover the successor starts its resources
before it takes the VIP over; vmacd runs every resource's stop once at startup; a filesystem
resource is never mounted on two nodes at once.
"""
from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vmaclab import httpprobe
from vmaclab.cluster import Cluster, Options
from vmaclab.lab import lab_namespaces
from vmaclab.record import rfc_bounds
from vmaclab.util import wait_until
from vmaclab.watch import MountWatch, mount_holder, netns_id
from vmaclab.webcluster import Probes, WebScenario, ping_window

pytestmark = pytest.mark.timeout(240)

ADVERT_MS = 200
MDI_B_MS, SKEW_B_MS = rfc_bounds(ADVERT_MS, 100)       # b: the importer's 100
MDI_A_MS, _ = rfc_bounds(ADVERT_MS, 150)               # a: the haresources node, 150
VMAC = "00:00:5e:00:01:01"                             # the importer's VRID 1
INITDEAD_MS = 1000


@pytest.fixture
def cluster() -> Iterator[Callable[..., Cluster]]:
    """Factory: a converged cluster (a master, page from a); torn down, no namespace left."""
    made: list[Cluster] = []

    def make(**kw: object) -> Cluster:
        c = Cluster(Options(keepalive_ms=ADVERT_MS, initdead_ms=INITDEAD_MS, **kw))
        made.append(c)
        return c.__enter__()

    yield make
    for c in made:
        c.__exit__(None, None, None)
        assert not lab_namespaces(c.lab.prefix), f"namespaces of {c.lab.prefix} left behind"


class Seen:
    """What the client recorded between start and stop."""

    def __init__(self, c: Cluster) -> None:
        self.c, self.probes = c, Probes.start(c, WebScenario())
        self.t0 = time.monotonic_ns()

    def stop(self) -> Seen:
        self.t1 = time.monotonic_ns()
        reqs, pings = self.probes.stop()
        self.reqs, self.pings, self.neigh = reqs["ha1"], pings["ha1"], self.probes.neigh
        return self

    def http(self, t_ns: int, end_ns: int | None = None) -> dict:
        return httpprobe.window(self.reqs, t_ns, end_ns or self.t1)

    def ping(self, t_ns: int, end_ns: int | None = None) -> dict:
        return ping_window(self.pings, t_ns, end_ns or self.t1, 5.0)

    def assert_vmac_throughout(self) -> None:
        vip = self.c.vips["ha1"]
        counts = self.neigh.counts[vip]
        assert self.neigh.error is None and counts == {VMAC: self.neigh.samples}, counts
        assert self.neigh.samples > 20


def _moved_at(h: dict, to: str) -> float:
    """ms from the window's start to the first good answer from *to*."""
    moves = [m for m in h["moves"] if m["to"] == to]
    assert moves, f"the page never came from {to}: {h}"
    return moves[0]["t_ms"]


def _wait_page(c: Cluster, node: str, timeout: float) -> None:
    wait_until(lambda: c.serving() == node, timeout, interval=0.02, what=f"the page from {node}")


def test_cable_cut_moves_the_page_to_b_and_back(cluster):
    c = cluster()
    assert c.web_running() == {"a": True, "b": False}         # the resource runs on the master
    seen = Seen(c)
    time.sleep(0.3)
    t_cut = int(c.cut("a") * 1e9)
    _wait_page(c, "b", MDI_B_MS / 1000 + 5)
    time.sleep(0.5)
    assert c.web_running() == {"a": False, "b": True}         # a (link down, fault) stopped it
    t_back = int(c.cut("a", up=True) * 1e9)
    _wait_page(c, "a", MDI_A_MS / 1000 + 5)
    time.sleep(0.5)
    seen.stop()
    cut, back = seen.http(t_cut, t_back), seen.http(t_back)
    assert cut["served_before"] == "a" and cut["served_after"] == "b"
    assert _moved_at(cut, "b") <= MDI_B_MS + 2500, cut
    assert cut["failed"] > 0 and seen.ping(t_cut, t_back)["lost"] > 0   # a real outage was seen
    assert back["served_after"] == "a" and _moved_at(back, "a") <= MDI_A_MS + 2500, back
    assert c.web_running() == {"a": True, "b": False}
    seen.assert_vmac_throughout()


def test_killed_web_server_hands_over_with_ping_uninterrupted(cluster):
    c = cluster(monitor_interval_ms=500, monitor_timeout_ms=1000, monitor_fall=1,
                failure_timeout_ms=3000)
    seen = Seen(c)
    time.sleep(0.3)
    t_kill = time.monotonic_ns()
    assert c.web["a"].kill(signal.SIGKILL) is not None
    detection_ms = 500 * 1 + 1000
    _wait_page(c, "b", (detection_ms + SKEW_B_MS) / 1000 + 5)
    t_b = time.monotonic_ns()
    assert c.nodes["a"].states() != {"ha1": "master"}           # out for failure_timeout
    _wait_page(c, "a", 3.0 + MDI_A_MS / 1000 + 5)               # then it may win again
    time.sleep(0.3)
    seen.stop()
    h = seen.http(t_kill)
    assert h["served_before"] == "a"
    assert _moved_at(h, "b") <= detection_ms + SKEW_B_MS + 3000, h
    assert seen.ping(t_kill, t_b + 300_000_000)["lost"] == 0      # VIP kept until b was heard
    assert c.web_running()["a"]                                  # a started a fresh server
    seen.assert_vmac_throughout()


def test_sigterm_hands_over_without_a_failed_request(cluster):
    c = cluster()
    seen = Seen(c)
    time.sleep(0.3)
    t_term = time.monotonic_ns()
    c.nodes["a"].proc.send_signal(signal.SIGTERM)
    _wait_page(c, "b", SKEW_B_MS / 1000 + 5)
    assert c.nodes["a"].proc.wait(timeout=15) == 0
    time.sleep(0.5)
    seen.stop()
    h, p = seen.http(t_term), seen.ping(t_term)
    assert (h["served_before"], h["served_after"]) == ("a", "b"), h
    assert h["failed"] == 0, [(o["start_ms"], o["errors"]) for o in h["outages"]]
    assert p["lost"] == 0, p
    assert c.web_running() == {"a": False, "b": True}
    seen.assert_vmac_throughout()


def test_sigkill_then_restart_old_master_serves_again_without_fault(cluster):
    c = cluster()
    seen = Seen(c)
    time.sleep(0.3)
    left_over = c.web["a"].pid()
    t_kill = time.monotonic_ns()
    c.nodes["a"].kill_daemon()
    _wait_page(c, "b", MDI_B_MS / 1000 + 5)
    assert c.web["a"].pid() == left_over                      # the dead daemon's server still runs
    c.nodes["a"].proc.wait(timeout=5)
    t_restart = time.monotonic_ns()
    c.nodes["a"].start()
    _wait_page(c, "a", (INITDEAD_MS + MDI_A_MS) / 1000 + 5)
    states = []
    for _ in range(20):                                        # it holds: no start failure later
        states.append({n: c.nodes[n].states() for n in ("a", "b")})
        time.sleep(0.1)
    seen.stop()
    assert states[-1] == {"a": {"ha1": "master"}, "b": {"ha1": "backup"}}, states[-1]
    assert not [s for s in states if "fault" in (s["a"].get("ha1"), s["b"].get("ha1"))], states
    assert c.web["a"].pid() not in (None, left_over)           # stopped once, then started anew
    assert seen.http(t_kill, t_restart)["served_after"] == "b"
    assert seen.http(t_restart)["served_after"] == "a"
    seen.assert_vmac_throughout()


def test_loadshare_crossed_priorities_then_one_node_serves_both(cluster):
    c = cluster(layout="loadshare")
    assert {n: c.nodes[n].states() for n in ("a", "b")} == {
        "a": {"ha1": "master", "ha2": "backup"}, "b": {"ha1": "backup", "ha2": "master"}}
    assert (c.serving("ha1"), c.serving("ha2")) == ("a", "b")
    probes = Probes.start(c, WebScenario(scenario="loadshare"))
    time.sleep(0.3)
    t_crash = int(c.cut("a") * 1e9)
    c.nodes["a"].crash_kill()
    wait_until(lambda: c.serving("ha1") == "b", MDI_B_MS / 1000 + 5, what="b serving VIP 1")
    time.sleep(0.5)
    reqs, pings = probes.stop()
    one, two = (httpprobe.window(reqs[i], t_crash, time.monotonic_ns()) for i in ("ha1", "ha2"))
    assert one["served_before"] == "a" and one["served_after"] == "b"
    assert _moved_at(one, "b") <= MDI_B_MS + 2500, one
    assert two["failed"] == 0 and (two["served_before"], two["served_after"]) == ("b", "b"), two
    assert ping_window(pings["ha2"], t_crash, time.monotonic_ns(), 5.0)["lost"] == 0
    for inst, vip in c.vips.items():
        assert probes.neigh.counts[vip] == {c.vmac(inst): probes.neigh.samples}, probes.neigh.counts


# -- the shared docroot (kind = "filesystem") ----------------------------------------------------
@pytest.fixture
def shared_disk(tmp_path: Path) -> Iterator[str]:
    """A loop device over an ext4 image holding the docroot. Listed before ``cluster`` in a test,
    it is torn down after it: the lab's processes, whose mount namespaces hold the mounts, are gone
    by then; what is left mounted in the host's namespace is unmounted, the loop device detached."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.html").write_text("the shared docroot\n")
    img = tmp_path / "docroot.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(img), "16M"], check=True,
                   capture_output=True)
    dev = subprocess.run(["losetup", "-f", "--show", str(img)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            if line.split()[0] == dev:
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
        subprocess.run(["losetup", "-d", dev], check=False)
        left = subprocess.run(["losetup", "-j", str(img)], capture_output=True, text=True,
                              check=False).stdout
        assert not left.strip(), f"loop device left: {left}"


def _write_on(c: Cluster, node: str, dev: str, name: str, text: str) -> None:
    """Write a file onto the shared disk where *node* has it mounted (in that node's view)."""
    pid = mount_holder(netns_id(c.lab.ns(node)), dev)
    assert pid is not None, f"{node} has {dev} mounted nowhere"
    subprocess.run(["nsenter", "-t", str(pid), "-m", "sh", "-c",
                    f"echo {text} > {c.docroot(node)}/{name} && sync"], check=True)


def _fetch(c: Cluster, path: str) -> tuple[str | None, bytes]:
    """(the node that served `path`, the body), or (None, b"") while nobody serves it (shared
    storage moves break-before-make: the old master stops its server before it hands over)."""
    try:
        status, node, body = httpprobe.fetch(c.lab.ns(c.client), c.vips["ha1"], path)
    except OSError:
        return None, b""
    return (node if status == 200 else None), body


def test_shared_docroot_follows_mastership_never_mounted_twice(shared_disk, cluster):
    c = cluster(docroot_device=shared_disk)
    assert _fetch(c, "/") == ("a", b"the shared docroot\n")      # a's lighttpd, the disk's page
    ids = {n: netns_id(c.lab.ns(n)) for n in ("a", "b")}
    homes = {n: str(c.lab.workdir(n)) for n in ("a", "b")}
    mounts = MountWatch(ids, homes, shared_disk).start()
    try:
        _write_on(c, "a", shared_disk, "from-a.txt", "written-on-a")
        c.nodes["a"].proc.send_signal(signal.SIGTERM)
        wait_until(lambda: _fetch(c, "/from-a.txt") == ("b", b"written-on-a\n"), 10,
                   what="b serving what a wrote")
        c.nodes["a"].proc.wait(timeout=15)
        _write_on(c, "b", shared_disk, "from-b.txt", "written-on-b")
        c.nodes["a"].start()
        wait_until(lambda: _fetch(c, "/from-b.txt") == ("a", b"written-on-b\n"),
                   (INITDEAD_MS + MDI_A_MS) / 1000 + 10, what="a serving what b wrote")
        time.sleep(0.5)
    finally:
        mounts.stop()
    assert mounts.error is None, mounts.error
    assert mounts.overlaps == [], mounts.overlaps[:3]
    assert mounts.mounted_samples["a"] > 0 and mounts.mounted_samples["b"] > 0, mounts.to_dict()
    assert mounts.current["a"] and not mounts.current["b"], mounts.current
