"""A tiny TOML writer for the importers: just what a vmacd config needs.

Top-level scalars first, then `[table]`, `[table.NAME]` and `[[array]]` sections, in the order of
the mapping. Lists are written inline; tables inside lists as inline tables. Strings use TOML
basic-string escapes (a subset of JSON's), so every output parses back with tomllib.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def key(name: str) -> str:
    return name if _BARE.fullmatch(name) else value(name)   # fullmatch: "$" would admit a trailing newline


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):   # TOML forbids a raw DEL, which JSON leaves alone
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _body(table: Mapping[str, Any]) -> list[str]:
    return [f"{key(k)} = {value(v)}" for k, v in table.items()]


def dumps(doc: Mapping[str, Any], header: Iterable[str] = ()) -> str:
    """Write `doc`; `header` lines become leading comments."""
    out = [f"# {line}".rstrip() for line in header]
    scalars = {k: v for k, v in doc.items() if not _is_table(v) and not _is_table_array(v)}
    if scalars:
        out += _body(scalars)
    for name, v in doc.items():
        if _is_table_array(v):
            for item in v:
                out += ["", f"[[{key(name)}]]"] + _body(item)
        elif _is_table(v) and v and all(_is_table(x) for x in v.values()):
            for sub, table in v.items():
                out += ["", f"[{key(name)}.{key(sub)}]"] + _body(table)
        elif _is_table(v) and v:
            out += ["", f"[{key(name)}]"] + _body(v)
    return "\n".join(out).lstrip("\n") + "\n"
