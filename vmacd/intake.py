"""One instance's received advertisements: from the bytes a socket read to its router's input.

    Receiver (vmacd/receiver.py) -> Intake.receive4 / receive6 -> router.handle -> Runner.execute

The intake of a `Runner` (vmacd/runner.py) owns decoding, with a one-entry cache: a master repeats
the same bytes every interval, and `VirtualRouter.repeat()` stands for their full handling; the
replay guard (hmac-sha256, IPsec AH); what a refused advertisement costs (a drop counter by
reason, the sender's row in the peer table, a log line at most once a second: RFC 9568 §7.1);
Heartbeat's `warn_after` for a backup; and the answer to a frame that claims our own address.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Protocol

from vmacd.core import auth as core_auth
from vmacd.core import wire
from vmacd.core.events import Action, AdvertReceived, Drop
from vmacd.core.fsm import State
from vmacd.core.proto import IPPROTO_AH, VRRP_GROUP_V4, VRRP_GROUP_V6, AddressCache, IPAddress

if TYPE_CHECKING:
    from vmacd.config import model
    from vmacd.control.metrics import InstanceMetrics
    from vmacd.core.fsm import VirtualRouter
    from vmacd.core.peers import Peer, PeerTable
    from vmacd.loop import Loop
    from vmacd.sending import InstanceSender

log = logging.getLogger("vmacd.instance")

RECLAIM_PER_S = 200.0            # re-assertions of the vMAC a second, at most (a flood of replays)


class Owner(Protocol):
    """What the intake uses of its runner."""

    @property
    def cfg(self) -> model.Instance: ...

    @property
    def auth(self) -> core_auth.AuthSpec: ...

    @property
    def primary(self) -> IPAddress: ...

    @property
    def router(self) -> VirtualRouter: ...

    @property
    def peers(self) -> PeerTable: ...

    @property
    def metrics(self) -> InstanceMetrics: ...

    @property
    def loop(self) -> Loop: ...

    @property
    def out(self) -> InstanceSender: ...

    def execute(self, actions: list[Action]) -> None: ...

    def rearm(self) -> None: ...

    def rate_log(self, kind: str, message: str) -> None: ...


class Intake:
    """The receive path of one instance (see the module docstring)."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.router = owner.router
        self.peers = owner.peers
        self.metrics = owner.metrics
        self.loop = owner.loop
        self.replay = core_auth.ReplayGuard()
        # the bytes of the advert accepted last (TTL, addresses, VRRP message) and its decoding
        self._last: tuple[bytes, wire.Advertisement] | None = None
        self._peer: Peer | None = None             # the row of the peer accepted last
        self._last_heard: float | None = None      # warn_after: the master's previous advert
        self._drop_logged: float | None = None     # when a drop was logged last
        self._reclaim_tokens = RECLAIM_PER_S / 10
        self._reclaim_at = 0.0
        self._group = VRRP_GROUP_V4 if owner.cfg.family == 4 else VRRP_GROUP_V6
        self._primary_packed = owner.primary.packed
        self._quarter = owner.cfg.advert_interval / 4

    def forget(self) -> None:
        """The config or the primary address changed: the advert cached last no longer stands."""
        self._last = None
        self._primary_packed = self.owner.primary.packed
        self._quarter = self.owner.cfg.advert_interval / 4

    @property
    def holdoff(self) -> float:
        """How long this instance's adverts may wait to be read in a batch (vmacd/receiver.py):
        none while master (a higher priority or a replay of our own frames is answered at once),
        else a quarter of the advertisement interval: a backup times every advert from its
        arrival stamp and reads the queue before its Master_Down_Timer acts."""
        return 0.0 if self.router.state is State.MASTER else self._quarter

    def receive4(self, data: bytes, ihl: int, now: float) -> None:
        """An IPv4 packet (header included) from this instance's socket, routed by VRID, that
        arrived at `now` (loop time)."""
        if data[12:16] == self._primary_packed:
            self._own_frame()
            return
        key = data[8:9] + data[12:20] + data[ihl:]     # TTL, source, destination, VRRP message
        last = self._last
        if last is not None and key == last[0] and self.router.repeat(now):
            self._repeated(last[1], now)
            return
        cfg, auth = self.owner.cfg, self.owner.auth
        try:
            if data[9] == IPPROTO_AH:
                adv = wire.decode_ip_packet(data, auth,
                                            pseudo_header=cfg.v3_checksum_pseudoheader,
                                            strict_checksum=cfg.v3_checksum_strict)
            else:
                adv = wire.decode(data[ihl:], src=_ip4(data[12:16]), dst=_ip4(data[16:20]),
                                  ttl=data[8], auth=auth,
                                  pseudo_header=cfg.v3_checksum_pseudoheader,
                                  strict_checksum=cfg.v3_checksum_strict)
        except wire.PacketError as exc:
            self._dropped(exc, _ip4(data[12:16]))
            return
        self._accept_decoded(adv, key, now)

    def receive6(self, data: bytes, src: IPAddress, dst: IPAddress | None,
                 hops: int | None, now: float) -> None:
        """An IPv6 VRRP payload with the metadata the kernel gave (hop limit from a cmsg), that
        arrived at `now` (loop time)."""
        if src == self.owner.primary:
            self._own_frame()
            return
        key = bytes((hops or 0,)) + src.packed + (dst.packed if dst else b"") + data
        last = self._last
        if last is not None and key == last[0] and self.router.repeat(now):
            self._repeated(last[1], now)
            return
        cfg = self.owner.cfg
        try:
            adv = wire.decode(data, src=src, dst=dst or self._group, ttl=hops,
                              auth=self.owner.auth, pseudo_header=cfg.v3_checksum_pseudoheader,
                              strict_checksum=cfg.v3_checksum_strict,
                              strict_link_local=cfg.ipv6_link_local_first_strict)
        except wire.PacketError as exc:
            self._dropped(exc, src)
            return
        self._accept_decoded(adv, key, now)

    def _accept_decoded(self, adv: wire.Advertisement, key: bytes, now: float) -> None:
        counters = self.owner.auth.type in ("hmac-sha256", "ah")  # a repeat of those is a replay
        if counters:
            try:
                self.replay.check(adv)
            except wire.PacketError as exc:
                self._dropped(exc, adv.src)
                return
        actions = self.router.handle(AdvertReceived(adv), now)
        drops = [a for a in actions if type(a) is Drop]
        if drops:                                           # a refused advert only counts a drop
            if adv.src is not None:
                self.peers.refused(adv.src, drops[0].reason, drops[0].detail, now)
        else:
            self._heard(adv, now)
            if adv.src is not None:
                self.peers.heard(adv, now)
                self._peer = self.peers.row(adv.src)
            if adv.priority == 0:
                self.metrics.priority_zero_received()
        self._last = (key, adv) if self.router.repeat_ok and not counters else None
        self.owner.execute(actions)

    def _repeated(self, adv: wire.Advertisement, now: float) -> None:
        """The repeat of the advert accepted last: counters and its sender's row, cheaply."""
        self.owner.rearm()                  # Master_Down_Timer moved
        self._heard(adv, now)
        peer = self._peer
        if peer is not None:
            peer.last = now
            peer.accepted += 1

    def _heard(self, adv: wire.Advertisement, now: float) -> None:
        """Counters, checksum form and Heartbeat's warntime for an accepted advert."""
        m = self.metrics
        m.advert_received()
        if adv.version == 3 and adv.family == 4:
            m.checksum_variant(adv.checksum)
        if self.router.state is not State.BACKUP or adv.priority == 0:
            self._last_heard = None
            return
        last, self._last_heard = self._last_heard, now
        if last is None:
            return
        gap = now - last
        m.interval(gap)
        cfg = self.owner.cfg
        if cfg.warn_after and gap > cfg.warn_after:
            m.late()
            log.warning("%s: advertisement late: %.0f ms since the previous one (warn_after %.0f ms)",
                        cfg.name, gap * 1000, cfg.warn_after * 1000,
                        extra={"instance": cfg.name, "gap_ms": round(gap * 1000, 1)})

    def _dropped(self, exc: wire.PacketError, src: IPAddress | None) -> None:
        self.metrics.dropped(exc.reason)
        if src is not None:
            self.peers.refused(src, exc.reason, exc.detail, self.loop.time())
        self._log_drop(exc.reason, f"{self.owner.cfg.name}: from {src}: {exc.detail}")

    def _log_drop(self, reason: str, detail: str) -> None:
        """RFC 9568 §7.1 SHOULD log discards, rate-limited: at most one line a second."""
        now = self.loop.time()
        if self._drop_logged is None or now - self._drop_logged >= 1.0:
            self._drop_logged = now
            log.info("dropped advertisement (%s): %s", reason, detail, extra={"reason": reason})

    def _own_frame(self) -> None:
        """A frame claiming to be ours that we did not send (a replay, a loop, a spoof) also
        moved the switch's FDB entry for our vMAC to wherever it came from: a master re-asserts
        the vMAC at once (rate-limited); a backup reports it and does not fight."""
        router = self.router
        if router.state is not State.MASTER or router.leaving:
            self.metrics.own_frame("reported")
            self.owner.rate_log("own-frame", "received a frame with our own source address while "
                                f"{router.state.value}: another box replays or spoofs it")
            return
        now = self.loop.time()
        self._reclaim_tokens = min(RECLAIM_PER_S / 10, self._reclaim_tokens
                                   + (now - self._reclaim_at) * RECLAIM_PER_S)
        self._reclaim_at = now
        if self._reclaim_tokens >= 1:         # every microsecond here, clients' frames go astray
            self._reclaim_tokens -= 1
            self.owner.out.send_advert(router.effective_priority)
        self.metrics.own_frame("reasserted")
        self.owner.rate_log("own-frame", "a replayed or looped copy of our advertisement arrived: "
                            "re-asserted the vMAC")


_ip4 = AddressCache(ipaddress.IPv4Address)
