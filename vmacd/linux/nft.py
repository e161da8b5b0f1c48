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
import os
import subprocess

TABLE = "vmacd"
PRIORITY = -10


def _which(name: str) -> str:
    """`name` on PATH, else /usr/sbin (shutil.which would pull compression modules into the
    daemon for this one lookup)."""
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        path = os.path.join(d, name)
        if d and os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return "/usr/sbin/" + name


class NftError(Exception):
    """nft is missing or refused the ruleset; the message carries nft's own words."""


class AcceptModeFilter:
    """Per-instance VIP drop rules in the ``inet vmacd`` table."""

    def __init__(self, nft: str | None = None, timeout: float = 5.0) -> None:
        self.nft = nft or _which("nft")
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
        self._run("\n".join(_drop_table("inet", TABLE)) + "\n")

    def ruleset(self) -> str:
        """The nft script for the current state (flush-and-replace of the whole table)."""
        v4 = sorted({a for addrs in self._vips.values() for a in addrs if ":" not in a})
        v6 = sorted({a for addrs in self._vips.values() for a in addrs if ":" in a})
        lines = [*_drop_table("inet", TABLE), f"table inet {TABLE} {{",
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


def _drop_table(family: str, name: str) -> list[str]:
    """nft lines deleting a table whether or not it exists (declare it empty, then delete it)."""
    return [f"table {family} {name} {{}}", f"delete table {family} {name}"]


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


class OwnerFilter:
    """The address owner's parent must not speak for the owned address with its own MAC
    (RFC 9568 §8.1.2-2/-3, §8.2.2-5).

    An owner's VIP is the parent's own address, so the kernel answers ARP and neighbour
    solicitations for it from the parent with the physical MAC, beside the vMAC's answer, and
    announces it from the parent when the link comes up (``arp_notify``, ``ndisc_notify``). While
    an owner instance runs, two tables drop those frames in the output hook:

    * ``arp vmacd_owner``: ARP replies with the parent's MAC as sender for an owned IPv4 address,
      and gratuitous requests (sender = target = the owned address) from that MAC;
    * ``ip6 vmacd_owner``: neighbour advertisements leaving through the parent whose target is an
      owned IPv6 address (``@th,64,128`` is the NA target field).

    The vMAC's answers and announcements, and the parent's traffic for every other address, pass.
    Ordinary ARP requests and neighbour solicitations the owner sends to resolve its own next hops
    still carry the physical MAC (docs/linux.md says why and what to do about it).
    """

    def __init__(self, nft: str | None = None, timeout: float = 5.0) -> None:
        self.nft = nft or _which("nft")
        self.timeout = timeout
        # instance -> (parent ifname, parent MAC, owned addresses)
        self._rules: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    def add(self, instance: str, parent: str, parent_mac: str, addrs: list[str]) -> None:
        self._rules[instance] = (parent, parent_mac.lower(), tuple(sorted(addrs)))
        self._run(self.ruleset())

    def remove(self, instance: str) -> None:
        if self._rules.pop(instance, None) is not None:
            self._run(self.ruleset())

    def close(self) -> None:
        self._rules.clear()
        self._run("\n".join(_drop_table("arp", OWNER_TABLE) + _drop_table("ip6", OWNER_TABLE))
                  + "\n")

    def _run(self, script: str) -> None:
        run_nft(self.nft, script, self.timeout)

    def ruleset(self) -> str:
        arp: list[str] = []
        nd: list[str] = []
        for parent, mac, addrs in sorted(set(self._rules.values())):
            for addr in addrs:
                ip = ipaddress.ip_address(addr)
                if ip.version == 4:
                    arp.append(f"arp operation reply arp saddr ether {mac} arp saddr ip {ip} drop")
                    arp.append(f"arp operation request arp saddr ether {mac} arp saddr ip {ip} "
                               f"arp daddr ip {ip} drop")
                else:
                    nd.append(f'oifname "{parent}" icmpv6 type nd-neighbor-advert '
                              f"@th,64,128 0x{int(ip):032x} drop")
        lines: list[str] = []
        for fam, rules in (("arp", arp), ("ip6", nd)):
            lines += [*_drop_table(fam, OWNER_TABLE), f"table {fam} {OWNER_TABLE} {{",
                      "  chain output {",
                      "    type filter hook output priority 0; policy accept;"]
            lines += [f"    {r}" for r in rules]
            lines += ["  }", "}"]
        return "\n".join(lines) + "\n"
