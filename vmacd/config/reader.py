"""Typed access to one TOML table that records every problem instead of stopping at the first.

A `Reader` wraps one table and its key path (e.g. `instance[lan]`). Each accessor returns the
value, or the default after recording a `ConfigIssue` that names the key path and the bad value,
so the loader keeps going and `vmacd check` can print every error in one run. Keys the table does
not know are reported as typos with a "did you mean" hint.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vmacd.config import durations
from vmacd.config.emit import key as toml_key

MISSING: Any = object()
# paths, argv and names reach the kernel as C strings: a NUL would cut them short (or make
# Python refuse the call at run time), so no config string may hold one
NUL_RULE = "must not contain a NUL character (\\u0000)"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: renders as `FILE: key.path: message`."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.source}: {self.path}: {self.message}"
        return f"{self.source}: {self.message}"


class ConfigError(ValueError):
    """The config is refused. `errors` holds every issue found, in file order."""

    def __init__(self, errors: Iterable[ConfigIssue]) -> None:
        self.errors: list[ConfigIssue] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def show(value: object) -> str:
    """A value as the user wrote it in TOML: strings quoted, booleans lowercase."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib  # only a config with a mistake needs it: kept out of the daemon's RSS

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Issues:
    """The issue collector shared by every Reader of one load."""

    source: str
    items: list[ConfigIssue] = field(default_factory=list)
    # when a list: problems with key files and file modes go here and do not stop the load
    # (`vmacd check` reports them beside the preflight findings)
    file_items: list[ConfigIssue] | None = None

    def add(self, path: str, message: str) -> None:
        self.items.append(ConfigIssue(self.source, path, message))

    def file_problem(self, path: str, message: str) -> bool:
        """Record a key-file or file-mode problem; True when it is deferred (loading goes on)."""
        issue = ConfigIssue(self.source, path, message)
        if self.file_items is None:
            self.items.append(issue)
            return False
        self.file_items.append(issue)
        return True


class Reader:
    """One TOML table at `path`. Unknown keys are reported on construction."""

    def __init__(self, issues: Issues, data: dict[str, Any], path: str, known: Iterable[str]) -> None:
        self.issues = issues
        self.data = data
        self.path = path
        known = tuple(known)
        for key in data:
            if key not in known:
                self.error(key, f"unknown key{did_you_mean(key, known)}")

    def at(self, key: str) -> str:
        """The key path of `key`, in TOML syntax: a key that is not bare is quoted."""
        key = toml_key(key)
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.issues.add(self.at(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = MISSING, hint: str = "") -> Any:
        """The raw value; a missing key without default is an error and gives None."""
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            self.error(key, f"is required{hint}")
            return None
        return default

    def string(self, key: str, default: Any = MISSING, choices: tuple[str, ...] = (),
               check: Callable[[str], str | None] | None = None) -> Any:
        value = self.raw(key, default)
        if value is None or key not in self.data:
            return value
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {show(value)}")
            return None if default is MISSING else default
        if "\0" in value:
            self.error(key, f"{NUL_RULE}, got {show(value)}")
            return None if default is MISSING else default
        if choices and value not in choices:
            self.error(key, f"must be one of {' | '.join(choices)}, got {show(value)}"
                       f"{did_you_mean(value, choices)}")
            return None if default is MISSING else default
        problem = check(value) if check else None
        if problem:
            self.error(key, f"{problem}, got {show(value)}")
            return None if default is MISSING else default
        return value

    def integer(self, key: str, lo: int, hi: int, default: Any = MISSING, hint: str = "",
                missing_hint: str = "") -> Any:
        """An int in lo..hi; `hint` follows a range error, `missing_hint` a missing key."""
        value = self.raw(key, default, missing_hint)
        if value is None or key not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer {lo}..{hi}, got {show(value)}")
            return None if default is MISSING else default
        if not lo <= value <= hi:
            self.error(key, f"must be {lo}..{hi}, got {show(value)}{hint}")
            return None if default is MISSING else default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {show(value)}")
            return default
        return value

    def duration_us(self, key: str, default: str, lo_us: int = 0, hi_us: int = 3_600_000_000,
                    positive: bool = False) -> int | None:
        """A duration in µs; None (after recording an issue) when bad."""
        value = self.raw(key, default)
        try:
            us = durations.parse_us(value)
        except durations.DurationError as exc:
            self.error(key, f"{exc}, got {show(value)}")
            return None
        if positive and us == 0:
            self.error(key, f"must be longer than 0s, got {show(value)}")
            return None
        if not lo_us <= us <= hi_us:
            self.error(key, f"must be {durations.format_us(lo_us)}..{durations.format_us(hi_us)}, "
                            f"got {show(value)}")
            return None
        return us

    def seconds(self, key: str, default: str, hi_us: int = 3_600_000_000,
                positive: bool = False) -> float:
        us = self.duration_us(key, default, 0, hi_us, positive)
        return durations.parse_seconds(default) if us is None else us / 1_000_000

    def str_list(self, key: str, default: Any = MISSING, non_empty: bool = False) -> tuple[str, ...] | None:
        value = self.raw(key, default)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            self.error(key, f"must be a list of strings, got {show(value)}")
            return None
        if non_empty and not value:
            self.error(key, "must not be empty")
            return None
        if any("\0" in v for v in value):
            self.error(key, f"{NUL_RULE}, got {show(value)}")
            return None
        return tuple(value)

    def table_list(self, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """A list of inline tables, as (path, table) pairs in order; bad entries are reported."""
        value = self.raw(key, [])
        if not isinstance(value, list):
            self.error(key, f"must be a list of tables, got {show(value)}")
            return
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield f"{self.at(key)}[{i}]", item
            else:
                self.issues.add(f"{self.at(key)}[{i}]", f"must be a table like {{ name = \"eth0\", "
                                                        f"weight = -50 }}, got {show(item)}")
