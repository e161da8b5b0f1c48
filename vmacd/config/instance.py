"""One [[instance]] table -> Instance, with every per-key rule of docs/config.md and RFC 9568 §5.2/§6.1.

Cross-instance rules (duplicate names and VRIDs, sync groups) live in load.py.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vmacd.config import model
from vmacd.config.emit import key as toml_key
from vmacd.config.reader import Issues, Reader, did_you_mean, show

INSTANCE_KEYS = (
    "name", "interface", "vrid", "version", "priority", "advert_interval", "warn_after",
    "virtual_ips", "vmac", "vmac_mode", "preempt", "preempt_delay", "accept", "unicast_peers",
    "auth", "garp_repeat", "garp_refresh", "startup_delay", "graceful_handover",
    "v3_checksum_pseudoheader", "v3_checksum_strict", "ipv6_link_local_first",
    "ipv6_link_local_first_strict", "track_interfaces", "track_scripts",
    "track_files", "resources", "notify", "notify_master", "notify_backup", "notify_fault",
    "notify_stop",
)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
NAME_RULE = "must be 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit"
_IFNAME_RE = re.compile(r"^[^/:\s]{1,15}$")
# in a program name, these mean a shell line was written where an argv list belongs
_SHELL_RE = re.compile(r"""[\s<>|&;$`'"(){}*?~#\\]""")
MAX_WEIGHT = 254


def check_name(value: str) -> str | None:
    return None if NAME_RE.match(value) else NAME_RULE


def check_ifname(value: str) -> str | None:
    if value in (".", "..") or not _IFNAME_RE.match(value):
        return "must be a Linux interface name (1-15 characters, no '/', ':' or spaces)"
    return None


def check_abs_path(value: str) -> str | None:
    return None if value.startswith("/") else "must be an absolute path"


def parse_instance(issues: Issues, data: dict[str, Any], index: int,
                   auths: Mapping[str, model.Auth | None],
                   scripts: Mapping[str, model.TrackScript | None],
                   resources: Mapping[str, model.Resource | None]) -> model.Instance | None:
    """Parse one instance; None when it has errors (which are in `issues`)."""
    name = data.get("name")
    label = f"instance[{name}]" if isinstance(name, str) and NAME_RE.match(name) else f"instance[{index}]"
    before = len(issues.items)
    r = Reader(issues, data, label, INSTANCE_KEYS)
    name = r.string("name", check=check_name)
    interface = r.string("interface", check=check_ifname)
    vrid = r.integer("vrid", 1, 255, missing_hint=" (1..255; RFC 9568 §6.1 gives VRID no default)")
    version = r.integer("version", 2, 3, default=3)
    zero = data.get("priority") == 0 and data.get("priority") is not False
    priority = r.integer("priority", 1, 255, default=model.DEFAULT_PRIORITY,
                         hint=" (0 is reserved for a master that is leaving, RFC 9568 §5.2.4)"
                         if zero else "")
    ll_first = r.boolean("ipv6_link_local_first", True)
    vips = _virtual_ips(r, version, ll_first is not False)
    interval_cs = _advert_interval(r, version)
    kwargs = {
        "name": name, "interface": interface, "vrid": vrid, "version": version,
        "priority": priority, "virtual_ips": vips, "advert_interval_cs": interval_cs,
        "warn_after": _warn_after(r, interval_cs),
        "vmac": r.boolean("vmac", True),
        "vmac_mode": r.string("vmac_mode", "bridge", model.VMAC_MODES),
        "preempt": r.boolean("preempt", True),
        "preempt_delay": r.seconds("preempt_delay", "0s"),
        "accept": r.boolean("accept", True),
        "unicast_peers": _unicast_peers(r, vips),
        "auth": _auth_ref(r, auths, version),
        "garp_repeat": r.integer("garp_repeat", 1, 100, default=3),
        "garp_refresh": r.seconds("garp_refresh", "0s"),
        "startup_delay": r.seconds("startup_delay", "0s"),
        "graceful_handover": r.string("graceful_handover", "make-before-break",
                                      model.HANDOVER_MODES),
        "v3_checksum_pseudoheader": r.boolean("v3_checksum_pseudoheader", True),
        "v3_checksum_strict": r.boolean("v3_checksum_strict", False),
        "ipv6_link_local_first": ll_first,
        "ipv6_link_local_first_strict": _link_local_strict(r, vips, ll_first),
        "track_interfaces": _track_interfaces(r),
        "track_scripts": _track_scripts(r, scripts),
        "track_files": _track_files(r),
        "resources": _resources(r, resources),
        "notify": r.string("notify", None, check=check_abs_path),
        **{key: _argv(r, key) for key in ("notify_master", "notify_backup", "notify_fault",
                                          "notify_stop")},
    }
    if version == 2:
        for key in ("v3_checksum_pseudoheader", "v3_checksum_strict"):
            if r.has(key):
                r.error(key, "applies to version 3 only; VRRPv2 has one checksum form")
    if len(issues.items) > before:
        return None
    return model.Instance(**kwargs)


def _link_local_strict(r: Reader, vips: tuple[model.IPInterface, ...], ll_first: bool | None) -> bool | None:
    """ipv6_link_local_first_strict, after both IPv6 keys are checked against the family."""
    strict = r.boolean("ipv6_link_local_first_strict", False)
    if vips and vips[0].version == 4:
        for key in ("ipv6_link_local_first", "ipv6_link_local_first_strict"):
            if r.has(key):
                r.error(key, "applies to IPv6 instances only (an IPv4 list has no link-local "
                             "address; RFC 9568 §5.2.9)")
    elif strict and ll_first is False:
        r.error("ipv6_link_local_first_strict", "would drop adverts like this instance's own "
                "(ipv6_link_local_first = false sends no link-local first): set one of them back")
    return strict


def _argv(r: Reader, key: str) -> tuple[str, ...]:
    """An optional command as an argv list whose program is an absolute path."""
    argv = program(r, key, r.str_list(key, (), non_empty=r.has(key)))
    if not argv:
        return ()
    if not argv[0].startswith("/"):
        r.error(key, f"the program must be an absolute path, got {show(argv[0])}")
        return ()
    return argv


def program(r: Reader, key: str, argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """An argv whose first word is a program, not a shell line (vmacd runs no shell)."""
    if argv and _SHELL_RE.search(argv[0]):
        r.error(key, "the first word must be a program (argv, no shell): split the command into "
                     "its words, or run a shell line as [\"/bin/sh\", \"-c\", \"...\"], "
                     f"got {show(argv[0])}")
        return None
    return argv


def _weight(issues: Issues, path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_WEIGHT <= value <= MAX_WEIGHT:
        issues.add(f"{path}.weight", f"must be an integer -{MAX_WEIGHT}..{MAX_WEIGHT}, got {show(value)}")
        return 0
    return value


def _advert_interval(r: Reader, version: int | None) -> int:
    """RFC 9568 §5.2.7 / erratum 8301: v3 carries 1..4095 cs; RFC 3768: v2 carries 1..255 s."""
    raw = r.raw("advert_interval", "1s")
    us = r.duration_us("advert_interval", "1s", 0, 255_000_000)
    if us is None:
        return model.DEFAULT_INTERVAL_CS
    if version == 2:
        if us % 1_000_000 or not 1 <= us // 1_000_000 <= 255:
            r.error("advert_interval", f"VRRPv2 carries whole seconds: must be 1s..255s, got {show(raw)}")
            return model.DEFAULT_INTERVAL_CS
        return us // 10_000
    if us % 10_000 or not 1 <= us // 10_000 <= 4095:
        r.error("advert_interval", "VRRPv3 carries whole centiseconds: must be 10ms..40.95s "
                                   f"in steps of 10ms, got {show(raw)}")
        return model.DEFAULT_INTERVAL_CS
    return us // 10_000


def _warn_after(r: Reader, interval_cs: int) -> float:
    us = r.duration_us("warn_after", "0s", 0, 3_600_000_000)
    if us and us <= interval_cs * 10_000:
        r.error("warn_after", f"must be longer than advert_interval ({interval_cs * 10}ms) or \"0s\" "
                              f"to disable, got {show(r.raw('warn_after'))}")
        return 0.0
    return (us or 0) / 1_000_000


def _virtual_ips(r: Reader, version: int | None, ll_first: bool = True) -> tuple[model.IPInterface, ...]:
    """At least one VIP (9568-5.2.5-1), one family (5.2.9-2), IPv6 link-local first (6.1-3;
    `ll_first` False, from ipv6_link_local_first = false, also allows a list without one)."""
    texts = r.str_list("virtual_ips")
    if texts is None:
        return ()
    if not texts:
        r.error("virtual_ips", "must list at least one address (RFC 9568 §5.2.5: Count IPvX Addr >= 1)")
        return ()
    if len(texts) > 255:
        r.error("virtual_ips", f"at most 255 addresses fit an advertisement, got {len(texts)}")
        return ()
    out: list[model.IPInterface] = []
    seen: set[model.IPAddress] = set()
    for i, text in enumerate(texts):
        path = f"{r.at('virtual_ips')}[{i}]"
        try:
            vip = ipaddress.ip_interface(text)
        except ValueError:
            r.issues.add(path, f"must be an IP address with an optional /prefix, got {show(text)}")
            continue
        addr = vip.ip
        if "%" in text:
            # adverts carry bare addresses: fe80::1%eth0 would never equal a received fe80::1
            r.issues.add(path, "must not have a %zone (the instance's interface is the zone), "
                               f"got {show(text)}")
        elif addr.is_multicast or addr.is_unspecified or addr.is_loopback:
            r.issues.add(path, f"must be a unicast address, got {show(text)}")
        elif out and vip.version != out[0].version:
            r.issues.add(path, f"all addresses of an instance must be IPv{out[0].version} like the "
                               f"first (RFC 9568 §5.2.9; use a second instance), got {show(text)}")
        elif addr in seen:
            r.issues.add(path, f"duplicate address, got {show(text)}")
        else:
            out.append(vip)
            seen.add(addr)
    if out and out[0].version == 6:
        if version == 2:
            r.error("version", "VRRPv2 is IPv4 only (RFC 3768); IPv6 needs version = 3, got 2")
        _link_local_first(r, out, texts, ll_first)
    return tuple(out)


def _link_local_first(r: Reader, vips: list[model.IPInterface], texts: Sequence[str],
                      ll_first: bool) -> None:
    """RFC 9568 §5.2.9 / §6.1: the VR link-local first; with ipv6_link_local_first = false a list
    without one (keepalived's and FRR's usual), but never a link-local behind a global address."""
    later = [i for i, v in enumerate(vips) if v.ip.is_link_local and i > 0]
    if vips[0].ip.is_link_local:
        return
    if ll_first:
        r.issues.add(f"{r.at('virtual_ips')}[0]",
                     "the first IPv6 address must be the virtual router's link-local address "
                     "(RFC 9568 §5.2.9, §6.1: RFC receivers drop advertisements whose first address "
                     f"is not link-local); put e.g. \"fe80::1\" first, got {show(texts[0])} (or set "
                     "ipv6_link_local_first = false to send keepalived's / FRR's global-only list)")
    elif later:
        r.issues.add(f"{r.at('virtual_ips')}[{later[0]}]",
                     "a link-local address goes first in an IPv6 list (RFC 9568 §5.2.9), got "
                     f"{show(str(vips[later[0]]))} after {show(texts[0])}")


def _unicast_peers(r: Reader, vips: tuple[model.IPInterface, ...]) -> tuple[model.IPAddress, ...]:
    texts = r.str_list("unicast_peers", ())
    if not texts:
        return ()
    out: list[model.IPAddress] = []
    for i, text in enumerate(texts):
        path = f"{r.at('unicast_peers')}[{i}]"
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            r.issues.add(path, f"must be an IP address, got {show(text)}")
            continue
        if vips and addr.version != vips[0].version:
            r.issues.add(path, f"must be IPv{vips[0].version} like the virtual_ips, got {show(text)}")
        elif addr.is_multicast or addr.is_unspecified:
            r.issues.add(path, f"must be a unicast address, got {show(text)}")
        elif addr in out:
            r.issues.add(path, f"duplicate peer, got {show(text)}")
        else:
            out.append(addr)
    return tuple(out)


def _auth_ref(r: Reader, auths: Mapping[str, model.Auth | None], version: int | None) -> model.Auth | None:
    name = r.string("auth", None)
    if name is None:
        return None
    if name not in auths:
        r.error("auth", f"no [auth.{toml_key(name)}] table, got {show(name)}{_hint(name, auths)}")
        return None
    auth = auths[name]
    if auth is None:          # the table itself is bad and already reported
        return None
    if auth.type in ("pass", "ah") and version == 3:
        r.error("auth", f"[auth.{toml_key(name)}] has type {auth.type}, which only VRRPv2 carries (RFC 9568 "
                        "removed authentication); use type hmac-sha256 or version = 2")
    return auth


def _hint(name: str, table: Mapping[str, Any]) -> str:
    return did_you_mean(name, table)


def _track_interfaces(r: Reader) -> tuple[model.TrackedInterface, ...]:
    out = []
    for path, item in r.table_list("track_interfaces"):
        sub = Reader(r.issues, item, path, ("name", "weight"))
        name = sub.string("name", check=check_ifname)
        weight = _weight(r.issues, path, item.get("weight", 0))
        if name is not None:
            out.append(model.TrackedInterface(name, weight))
    return tuple(out)


def _track_scripts(r: Reader, scripts: Mapping[str, model.TrackScript | None]
                   ) -> tuple[model.TrackedScript, ...]:
    out = []
    for path, item in r.table_list("track_scripts"):
        sub = Reader(r.issues, item, path, ("name", "weight"))
        name = sub.string("name")
        weight = _weight(r.issues, path, item.get("weight", 0))
        if name is None:
            continue
        if name not in scripts:
            sub.error("name", f"no [track_script.{toml_key(name)}] table, "
                              f"got {show(name)}{_hint(name, scripts)}")
            continue
        script = scripts[name]
        if script is not None:
            out.append(model.TrackedScript(script, weight))
    return tuple(out)


def _track_files(r: Reader) -> tuple[model.TrackedFile, ...]:
    out = []
    for path, item in r.table_list("track_files"):
        sub = Reader(r.issues, item, path, ("path", "weight"))
        fpath = sub.string("path", check=check_abs_path)
        weight = _weight(r.issues, path, item.get("weight", 1))
        if fpath is not None:
            out.append(model.TrackedFile(fpath, weight))
    return tuple(out)


def _resources(r: Reader, resources: Mapping[str, model.Resource | None]) -> tuple[model.Resource, ...]:
    names = r.str_list("resources", ())
    out: list[model.Resource] = []
    for i, name in enumerate(names or ()):
        path = f"{r.at('resources')}[{i}]"
        if name not in resources:
            r.issues.add(path, f"no [resource.{toml_key(name)}] table, got {show(name)}"
                               f"{_hint(name, resources)}")
            continue
        res = resources[name]
        if res is None:
            continue
        if res in out:
            r.issues.add(path, f"listed twice, got {show(name)}")
        else:
            out.append(res)
    return tuple(out)
