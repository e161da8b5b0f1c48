"""Accept mode with nftables (RFC 9568 6.4.3-8/-9, 6.1-10, 8.3.1-1).

A non-owner master with ``accept = false`` must not accept packets addressed to its VIPs, yet ARP
and IPv6 neighbour discovery for them must keep working. vmacd keeps one table, ``inet vmacd``:

    table inet vmacd {
      set vips4 { type ipv4_addr; }          # every VIP of every instance that needs the drop
      set vips6 { type ipv6_addr; }
      chain input   { type filter hook input priority -10; policy accept;
                      ip6 daddr @vips6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
                      ip daddr @vips4 drop;  ip6 daddr @vips6 drop }
      chain forward { same drops: a VIP is never forwarded either }
    }

ARP is not IP, so no ``ip`` rule sees it. The whole table is rewritten in one ``nft -f -``
transaction on every change (atomic: no moment without rules), from the per-instance state kept
here; ``close()`` deletes the table. The calls are short synchronous subprocesses (a few ms) and
happen only on state transitions.
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess

TABLE = "vmacd"
PRIORITY = -10


class NftError(Exception):
    """nft is missing or refused the ruleset; the message carries nft's own words."""


class AcceptModeFilter:
    """Per-instance VIP drop rules in the ``inet vmacd`` table."""

    def __init__(self, nft: str | None = None, timeout: float = 5.0) -> None:
        self.nft = nft or shutil.which("nft") or "/usr/sbin/nft"
        self.timeout = timeout
        self._vips: dict[str, tuple[str, ...]] = {}

    def add(self, instance: str, vips: list[str]) -> None:
        """Drop traffic to `vips` (addresses, optional /prefix ignored) for `instance`."""
        addrs = tuple(str(ipaddress.ip_interface(v).ip) for v in vips)
        previous = self._vips.get(instance)
        self._vips[instance] = addrs
        try:
            self._apply()
        except NftError:
            if previous is None:
                self._vips.pop(instance, None)
            else:
                self._vips[instance] = previous
            raise

    def remove(self, instance: str) -> None:
        """Stop dropping the VIPs of `instance` (nothing to do when it has none)."""
        if self._vips.pop(instance, None) is not None:
            self._apply()

    def instances(self) -> dict[str, tuple[str, ...]]:
        """Instance -> VIP addresses currently dropped."""
        return dict(self._vips)

    def close(self) -> None:
        """Delete the table (also when vmacd did not make it in this run: a crash leftover)."""
        self._vips.clear()
        self._run(f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n")

    def ruleset(self) -> str:
        """The nft script for the current state (flush-and-replace of the whole table)."""
        v4 = sorted({a for addrs in self._vips.values() for a in addrs if ":" not in a})
        v6 = sorted({a for addrs in self._vips.values() for a in addrs if ":" in a})
        lines = [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}",
                 f"table inet {TABLE} {{",
                 "  set vips4 { type ipv4_addr; }", "  set vips6 { type ipv6_addr; }"]
        for chain in ("input", "forward"):
            lines += [f"  chain {chain} {{",
                      f"    type filter hook {chain} priority {PRIORITY}; policy accept;",
                      ("    ip6 daddr @vips6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }"
                       " accept"),
                      "    ip daddr @vips4 drop",
                      "    ip6 daddr @vips6 drop",
                      "  }"]
        lines.append("}")
        if v4:
            lines.append(f"add element inet {TABLE} vips4 {{ {', '.join(v4)} }}")
        if v6:
            lines.append(f"add element inet {TABLE} vips6 {{ {', '.join(v6)} }}")
        return "\n".join(lines) + "\n"

    def _apply(self) -> None:
        self._run(self.ruleset())

    def _run(self, script: str) -> None:
        run_nft(self.nft, script, self.timeout)


def run_nft(nft: str, script: str, timeout: float) -> None:
    """Apply one nft script as a single transaction; NftError with nft's words on failure."""
    try:
        res = subprocess.run([nft, "-f", "-"], input=script, capture_output=True,
                             text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise NftError(f"vmacd needs nftables here: {nft} not found") from None
    except subprocess.TimeoutExpired:
        raise NftError(f"nft did not answer within {timeout}s") from None
    if res.returncode != 0:
        raise NftError(f"nft refused the vmacd table: {res.stderr.strip()}")


OWNER_TABLE = "vmacd_owner"


class OwnerArpFilter:
    """The address owner's parent must not answer ARP for the owned address (RFC 9568 §8.1.2-2).

    An owner's VIP is the parent's own address, so the kernel answers ARP for it from the parent
    with the physical MAC, beside the vMAC's answer. One ``arp vmacd_owner`` table drops ARP
    replies leaving with the parent's MAC as sender for those addresses; the vMAC's replies (and
    the parent's replies for every other address) pass. Installed while the instance runs.
    """

    def __init__(self, nft: str | None = None, timeout: float = 5.0) -> None:
        self.nft = nft or shutil.which("nft") or "/usr/sbin/nft"
        self.timeout = timeout
        self._rules: dict[str, tuple[str, tuple[str, ...]]] = {}   # instance -> (mac, addrs)

    def add(self, instance: str, parent_mac: str, addrs: list[str]) -> None:
        self._rules[instance] = (parent_mac.lower(), tuple(sorted(addrs)))
        self._run(self.ruleset())

    def remove(self, instance: str) -> None:
        if self._rules.pop(instance, None) is not None:
            self._run(self.ruleset())

    def close(self) -> None:
        self._rules.clear()
        self._run(f"table arp {OWNER_TABLE} {{}}\ndelete table arp {OWNER_TABLE}\n")

    def _run(self, script: str) -> None:
        run_nft(self.nft, script, self.timeout)

    def ruleset(self) -> str:
        lines = [f"table arp {OWNER_TABLE} {{}}", f"delete table arp {OWNER_TABLE}",
                 f"table arp {OWNER_TABLE} {{", "  chain output {",
                 "    type filter hook output priority 0; policy accept;"]
        for mac, addrs in sorted(set(self._rules.values())):
            for addr in addrs:
                lines.append(f"    arp operation reply arp saddr ether {mac} arp saddr ip {addr} drop")
        lines += ["  }", "}"]
        return "\n".join(lines) + "\n"
