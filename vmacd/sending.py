"""What one instance puts on the wire: its advertisements and its announcements.

`InstanceSender` is the sending half of a `Runner` (vmacd/runner.py), which executes the state
machine's SendAdvert and Announce actions through it:

- advertisements, multicast as whole Ethernet frames from the vMAC (linux.link.PacketSender),
  prebuilt per priority; with hmac-sha256 or IPsec AH every advert carries a fresh counter, so
  the next one is built right after each send, ready for the send after it. With
  `unicast_peers` one raw-socket datagram goes to each peer;
- the gratuitous ARPs / unsolicited NAs that announce the VIPs from the vMAC (RFC 9568 §6.4.2),
  repeated `garp_repeat` times ANNOUNCE_SPACING apart, and every `garp_refresh` while master.

It reads the runner's current facts (config, primary address, auth, own addresses) at each send:
a reload or an address change updates them there, and `forget_frames()` drops the frames built
from the old ones.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypedDict

from vmacd.core import auth as core_auth
from vmacd.core import l2, wire
from vmacd.core.proto import VRRP_GROUP_V4, VRRP_GROUP_V6, IPAddress

if TYPE_CHECKING:
    from vmacd.config import model
    from vmacd.control.metrics import InstanceMetrics
    from vmacd.core.fsm import VirtualRouter
    from vmacd.linux.link import PacketSender
    from vmacd.linux.sockets import VrrpSocket
    from vmacd.loop import Loop, Timer

ANNOUNCE_SPACING = 0.05          # seconds between repeated GARP/NA rounds
AH_EPOCH = 1704067200            # 2024-01-01T00:00:00Z, origin of the AH sequence numbers
COUNTED_AUTH = ("hmac-sha256", "ah")   # every advert carries a fresh counter: never cached


class Facts(Protocol):
    """What the sender reads of its runner at each send (a reload or an address change moves
    them)."""

    @property
    def cfg(self) -> model.Instance: ...

    @property
    def primary(self) -> IPAddress: ...

    @property
    def auth(self) -> core_auth.AuthSpec: ...

    @property
    def own(self) -> frozenset[IPAddress]: ...


class CodecOptions(TypedDict, total=False):
    """The keyword arguments of wire.encode / wire.build_ip_packet for one advert."""

    pseudo_header: bool
    auth: core_auth.AuthSpec
    counter: int


class InstanceSender:
    """Sends one instance's advertisements and announcements (see the module docstring)."""

    def __init__(self, facts: Facts, loop: Loop, metrics: InstanceMetrics, router: VirtualRouter,
                 link: PacketSender, sock: VrrpSocket, *, parent_index: int, src_mac: str,
                 rate_log: Callable[[str, str], None]) -> None:
        self.facts = facts
        self.loop = loop
        self.metrics = metrics
        self.router = router
        self.link = link
        self.sock = sock
        self.parent_index = parent_index
        self.src_mac = src_mac
        self._rate_log = rate_log
        self._refresh: Timer | None = None
        self._frames: dict[int, bytes] = {}                # priority -> advert frame (no counter)
        self._next_frame: tuple[int, bytes] | None = None  # (priority, frame) with the next counter
        self._counter = time.time_ns() // 1000             # hmac-sha256: monotonic across restarts
        # AH sequence: keepalived keeps the highest number it saw and drops anything not above
        # it, so a restart must not begin at 1 again: tenths of a second since 2024 stay ahead of
        # any earlier run that sent fewer than 10 adverts a second (v2 sends one a second).
        self._ah_seq = int((time.time() - AH_EPOCH) * 10) % core_auth.AH_SEQ_MAX
        self._frame_mcast = VRRP_GROUP_V4 if facts.cfg.family == 4 else VRRP_GROUP_V6

    def forget_frames(self) -> None:
        """The config or the primary address changed: the prebuilt frames carry the old ones."""
        self._frames.clear()
        self._next_frame = None

    def unicast_peers(self) -> list[IPAddress]:
        """The configured peers minus this box's own addresses (one file serves every node)."""
        own = self.facts.own
        return [p for p in self.facts.cfg.unicast_peers if p not in own]

    # ------------------------------------------------------------------ advertisements
    def send_advert(self, priority: int) -> None:
        if priority == 0:
            self.metrics.priority_zero_sent()
        if self.facts.cfg.unicast_peers:
            self._send_unicast(priority)
            return
        frame = self._frames.get(priority)
        counted = frame is None and self.facts.auth.type in COUNTED_AUTH
        if frame is None:
            ready = self._next_frame
            frame = ready[1] if ready is not None and ready[0] == priority \
                else self.build_frame(priority)
            self._next_frame = None
        err = self.link.send(frame)
        if counted:
            # the next one with this priority (and the next counter) is built now, after the send,
            # so a re-assert or a takeover does not wait for the HMAC; a frame built for another
            # priority takes a later counter and this one is dropped unsent (counters only grow)
            self._next_frame = (priority, self.build_frame(priority))
        if err:
            self._rate_log("send", f"advertisement not sent: {err}")
            return
        self.metrics.advert_sent()

    def template(self, priority: int) -> wire.Advertisement:
        c = self.facts.cfg
        return wire.Advertisement(version=c.version, vrid=c.vrid, priority=priority,
                                  interval_cs=c.advert_interval_cs,
                                  addresses=tuple(v.ip for v in c.virtual_ips))

    def _codec_options(self) -> CodecOptions:
        """Codec options for the next advert: a fresh counter for hmac-sha256 / AH."""
        auth = self.facts.auth
        kw: CodecOptions = {"pseudo_header": self.facts.cfg.v3_checksum_pseudoheader, "auth": auth}
        if auth.type == "hmac-sha256":
            self._counter += 1
            kw["counter"] = self._counter
        elif auth.type == "ah":
            self._ah_seq = self._ah_seq % core_auth.AH_SEQ_MAX + 1
            kw["counter"] = self._ah_seq
        return kw

    def build_frame(self, priority: int) -> bytes:
        """Ethernet frame from the vMAC to the VRRP group; cached unless a counter is in it."""
        kw = self._codec_options()
        packet = wire.build_ip_packet(self.template(priority), src=self.facts.primary,
                                      dst=self._frame_mcast, **kw)
        frame = wire.build_frame(self.src_mac, packet)
        if "counter" not in kw:
            self._frames[priority] = frame
        return frame

    def _send_unicast(self, priority: int) -> None:
        """unicast_peers: one raw-socket datagram per peer (this box's own addresses skipped)."""
        adv = self.template(priority)
        for peer in self.unicast_peers():
            payload = wire.encode(adv, src=self.facts.primary, dst=peer, **self._codec_options())
            err = self.sock.send_unicast(payload, str(peer), self.parent_index)
            if err:
                self._rate_log("unicast", f"unicast advertisement to {peer} not sent: {err}")
            else:
                self.metrics.advert_sent()

    # ------------------------------------------------------------------ announcements
    def announce(self, repeat: int) -> None:
        frames = self.announce_frames()
        self.send_frames(frames)
        for i in range(1, max(1, repeat)):
            self.loop.call_later(i * ANNOUNCE_SPACING, self.send_frames, frames)

    def announce_frames(self) -> list[bytes]:
        """One gratuitous ARP / unsolicited NA per VIP, from the vMAC (RFC 9568 §6.4.2)."""
        cfg = self.facts.cfg
        vips = [v.ip for v in cfg.virtual_ips]
        if cfg.family == 4:
            return [l2.garp_frame(self.src_mac, vip) for vip in vips]
        return [l2.unsolicited_na_frame(self.src_mac, self.facts.primary, vip) for vip in vips]

    def send_frames(self, frames: list[bytes]) -> None:
        if not self.router.holds_vips:
            return                    # lost mastership before a repeat was due
        sent = sum(1 for f in frames if not self.link.send(f))
        self.metrics.garp_sent(sent)

    def start_refresh(self) -> None:
        """garp_refresh: announce again every that many seconds while master (if not yet)."""
        if self.facts.cfg.garp_refresh and self._refresh is None:
            self._schedule_refresh()

    def stop_refresh(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def _schedule_refresh(self) -> None:
        def refresh() -> None:
            self._refresh = None
            if self.router.holds_vips:
                self.send_frames(self.announce_frames())
                self._schedule_refresh()

        self._refresh = self.loop.call_later(self.facts.cfg.garp_refresh, refresh)
