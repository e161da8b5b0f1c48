"""Registry of the lab's VRRP implementations: ``impls.get("keepalived")()`` -> Router."""
from __future__ import annotations

import importlib

from .base import STATES, Router, RouterConfig

_BUILTIN = {"keepalived": "vmaclab.impls.keepalived:Keepalived", "frr": "vmaclab.impls.frr:Frr",
            "vmacd": "vmaclab.impls.vmacd:Vmacd"}
_REGISTRY: dict[str, type[Router]] = {}


def register(name: str, cls: type[Router]) -> None:
    """Make *cls* available as ``get(name)`` (the vmacd plug-in registers itself this way)."""
    _REGISTRY[name] = cls


def get(name: str) -> type[Router]:
    """The Router class registered as *name*; raises KeyError naming the known ones."""
    if name not in _REGISTRY and name in _BUILTIN:
        mod, _, attr = _BUILTIN[name].partition(":")
        try:
            register(name, getattr(importlib.import_module(mod), attr))
        except ImportError as exc:
            raise KeyError(f"implementation {name!r} is not available: {exc}") from exc
    if name not in _REGISTRY:
        raise KeyError(f"unknown implementation {name!r}; known: {sorted(set(_BUILTIN) | set(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Known implementation names."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


__all__ = ["STATES", "Router", "RouterConfig", "get", "names", "register"]
