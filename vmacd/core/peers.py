"""The other routers of one virtual router as this one hears them: for `vmacctl status` and metrics.

Pure (no clock, no sockets): the runtime reports every advertisement it accepted (`heard`) and
every one it refused, by the codec or by the state machine (`refused`), with the time. The table
keeps one row per sender and forgets a sender not heard for `forget_after` seconds.

Why: a refused advertisement changes nothing but a drop counter (RFC 9568 §7.1), so a peer whose
adverts we refuse, or that refuses ours, leaves two masters on the LAN that no state shows. The
address list is the usual cause between vmacd, keepalived and FRR over IPv6: keepalived 2.2.7
drops an advert whose address count differs from its own or that lacks one of its addresses
("received an unexpected ip number count 2, expected 1"); FRR 8.4 vrrpd checks neither; RFC 9568
§7.1 (erratum 8300) drops one whose first IPv6 address is not link-local, which is keepalived's
and FRR's usual list. `check_addresses` says which of these apply to a peer's list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from vmacd.core.proto import Advertisement, IPAddress

MAX_PEERS = 32          # a LAN of forged sources must not grow the table without bound


class AddressListFacts(TypedDict):
    """AddressListCheck.as_dict(): the facts of a peer's list, addresses as strings."""

    same: bool
    same_set: bool
    missing: list[str]
    extra: list[str]
    first_not_link_local: bool
    keepalived_refuses_ours: bool


class AdvertShown(TypedDict):
    """The last advertisement accepted from a peer, as the status shows it."""

    version: int
    priority: int
    interval_ms: int
    addresses: list[str]


class RefusalShown(TypedDict):
    """The last advertisement refused from a peer: why, and how long ago (s)."""

    reason: str
    detail: str
    age_s: float


class PeerStatus(TypedDict):
    """One row of PeerTable.status() (`vmacctl status --json`, "peers")."""

    src: str
    age_s: float
    accepted: int
    refused: int
    last_refusal: RefusalShown | None
    advert: AdvertShown | None
    address_list: AddressListFacts | None
    warnings: list[str]


@dataclass(frozen=True)
class AddressListCheck:
    """A peer's advertised address list against ours (RFC 9568 §7.1: MAY compare, SHOULD log,
    no discard). Each field is a fact the status shows; `warnings()` says what follows."""

    theirs: tuple[IPAddress, ...]
    ours: tuple[IPAddress, ...]
    same: bool                        # same addresses in the same order
    same_set: bool                    # same addresses, any order
    missing: tuple[IPAddress, ...]    # ours, not in theirs
    extra: tuple[IPAddress, ...]      # theirs, not in ours
    first_not_link_local: bool        # IPv6 list that does not start with a link-local
    keepalived_refuses_ours: bool     # a keepalived peer with this list drops our adverts

    def warnings(self) -> list[str]:
        """One sentence per problem, for people (status, logs); empty when the lists agree."""
        out = []
        if self.keepalived_refuses_ours:
            diff = [f"{len(self.theirs)} address(es), we send {len(self.ours)}"]
            if self.missing:
                diff.append("not listing " + ", ".join(map(str, self.missing)))
            if self.extra:
                diff.append("listing " + ", ".join(map(str, self.extra)) + " that we do not")
            out.append("its address list differs from ours (" + "; ".join(diff) + "): a keepalived "
                       "peer drops our adverts, so both become master when we have the higher "
                       "priority; send the same list (IPv6: ipv6_link_local_first = false) or give "
                       "the peer ours")
        elif not self.same:
            out.append("it lists our addresses in another order")
        if self.first_not_link_local:
            out.append(f"its first IPv6 address {self.theirs[0]} is not link-local (keepalived's / "
                       "FRR's usual list): accepted; RFC 9568 §7.1 would drop it "
                       "(ipv6_link_local_first_strict = true)")
        return out

    def as_dict(self) -> AddressListFacts:
        """JSON-ready facts (addresses as strings)."""
        return {"same": self.same, "same_set": self.same_set,
                "missing": [str(a) for a in self.missing], "extra": [str(a) for a in self.extra],
                "first_not_link_local": self.first_not_link_local,
                "keepalived_refuses_ours": self.keepalived_refuses_ours}


def check_addresses(theirs: tuple[IPAddress, ...], ours: tuple[IPAddress, ...]) -> AddressListCheck:
    """Compare a received address list with our configured one."""
    mine, their_set = set(ours), set(theirs)
    return AddressListCheck(
        theirs=tuple(theirs), ours=tuple(ours), same=tuple(theirs) == tuple(ours),
        same_set=their_set == mine,
        missing=tuple(a for a in ours if a not in their_set),
        extra=tuple(a for a in theirs if a not in mine),
        first_not_link_local=bool(theirs) and theirs[0].version == 6 and not theirs[0].is_link_local,
        # keepalived 2.2.7 vrrp_check_packet: count equal, and each of its own addresses present
        keepalived_refuses_ours=len(theirs) != len(ours) or bool(their_set - mine))


@dataclass
class Peer:
    """What we last heard from one sender."""

    src: IPAddress
    last: float                                 # time of the last advert, accepted or refused
    accepted: int = 0
    refused: int = 0
    advert: Advertisement | None = None         # the last accepted one
    check: AddressListCheck | None = None       # of that advert's list
    refusal: tuple[str, str, float] | None = field(default=None)   # (reason, detail, time)


class PeerTable:
    """One row per sender of adverts for our VRID and family; see the module docstring."""

    def __init__(self, ours: tuple[IPAddress, ...], forget_after: float,
                 max_peers: int = MAX_PEERS) -> None:
        if forget_after <= 0 or max_peers < 1:
            raise ValueError(f"forget_after must be > 0 s and max_peers >= 1, got "
                             f"{forget_after!r}, {max_peers!r}")
        self.ours = tuple(ours)
        self.forget_after = forget_after
        self.max_peers = max_peers
        self._rows: dict[IPAddress, Peer] = {}

    def set_ours(self, ours: tuple[IPAddress, ...]) -> None:
        """Our list changed (reload): every row is compared again on its next advert."""
        self.ours = tuple(ours)
        for row in self._rows.values():
            row.check = None if row.advert is None else check_addresses(row.advert.addresses, self.ours)

    def heard(self, adv: Advertisement, now: float) -> AddressListCheck:
        """An accepted advert; returns the comparison of its list with ours."""
        row = self._row(adv.src, now)
        row.accepted += 1
        if row.check is None or row.advert is None or row.advert.addresses != adv.addresses:
            row.check = check_addresses(adv.addresses, self.ours)
        row.advert = adv
        return row.check

    def row(self, src: IPAddress | None) -> Peer | None:
        """The row of `src` (None when not heard), for a caller that updates it in place."""
        return self._rows.get(src) if src is not None else None

    def refused(self, src: IPAddress, reason: str, detail: str, now: float) -> None:
        """An advert from `src` dropped with drop reason `reason` (codec or state machine)."""
        row = self._row(src, now)
        row.refused += 1
        row.refusal = (reason, detail, now)

    def _row(self, src: IPAddress | None, now: float) -> Peer:
        if src is None:
            raise ValueError("an advert without a source cannot be attributed to a peer")
        self._expire(now)
        row = self._rows.get(src)
        if row is None:
            if len(self._rows) >= self.max_peers:
                del self._rows[min(self._rows.values(), key=lambda p: p.last).src]
            row = self._rows[src] = Peer(src, now)
        row.last = now
        return row

    def _expire(self, now: float) -> None:
        for src in [s for s, p in self._rows.items() if now - p.last > self.forget_after]:
            del self._rows[src]

    def peers(self, now: float) -> list[Peer]:
        """Live rows, most recently heard first."""
        self._expire(now)
        return sorted(self._rows.values(), key=lambda p: -p.last)

    def status(self, now: float) -> list[PeerStatus]:
        """JSON-ready rows for `vmacctl status --json` (ages in seconds, rounded to ms)."""
        out = []
        for p in self.peers(now):
            row: PeerStatus = {"src": str(p.src), "age_s": round(now - p.last, 3),
                         "accepted": p.accepted, "refused": p.refused, "last_refusal": None,
                         "advert": None, "address_list": None, "warnings": []}
            if p.advert is not None:
                a = p.advert
                row["advert"] = {"version": a.version, "priority": a.priority,
                                 "interval_ms": a.interval_cs * 10,
                                 "addresses": [str(x) for x in a.addresses]}
            if p.check is not None:
                row["address_list"] = p.check.as_dict()
                row["warnings"] += p.check.warnings()
            if p.refusal is not None:
                reason, detail, at = p.refusal
                row["last_refusal"] = {"reason": reason, "detail": detail, "age_s": round(now - at, 3)}
                if at == p.last:
                    row["warnings"].insert(0, f"we drop its adverts ({reason}: {detail}); if it is "
                                              "master, so are we")
            out.append(row)
        return out
