"""The control command table (SPEC §6): one registry serving every transport.

Every command is registered once with `@command(name, help, field=type, ...)`. The unix socket
server, `vmacctl`, and the daemon's own SIGHUP flag (which dispatches `{"cmd": "reload"}`) all go
through `Dispatcher.handle()`, so a command behaves the same whichever way it arrives.

A request is a JSON object `{"cmd": NAME, ...fields}`. A reply is always a dict: `{"ok": True,
...result}` or `{"ok": False, "error": "..."}`. Malformed requests, unknown commands, wrong field
types, unknown instances, refused reloads and even bugs in a handler become error replies; they
never raise out of `handle()`.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("vmacd.control")


class ReloadError(Exception):
    """Raised by `DaemonAPI.reload()` when the new config is refused; str() is shown to the user."""


class DaemonAPI(Protocol):
    """What the daemon offers the control plane (implemented by vmacd.daemon)."""

    def status(self) -> dict: ...

    def history(self) -> list[dict]: ...

    def maintenance(self, instance: str, on: bool) -> dict: ...

    async def reload(self) -> dict: ...


Handler = Callable[[DaemonAPI, dict], Awaitable[dict]]


@dataclass(frozen=True)
class Command:
    """One registry entry: the name, the one-line help, the typed fields and the handler."""

    name: str
    help: str
    fields: tuple[tuple[str, type], ...]
    handler: Handler
    exclusive: bool = False  # run one at a time (reload)


REGISTRY: dict[str, Command] = {}


def command(name: str, help: str, *, exclusive: bool = False,
            **fields: type) -> Callable[[Handler], Handler]:
    """Register an async handler `fn(api, args) -> dict` for `{"cmd": name, **fields}`.

    `fields` maps each required request field to its type (str, bool, int); the dispatcher
    checks presence and type before the handler runs and refuses unexpected fields.
    `exclusive` commands run one at a time per Dispatcher (two clients reloading at once).
    """

    def register(fn: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"control command {name!r} registered twice")
        REGISTRY[name] = Command(name, help, tuple(fields.items()), fn, exclusive)
        return fn

    return register


def error(message: str) -> dict:
    """An error reply."""
    return {"ok": False, "error": message}


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def _check_type(value: object, typ: type) -> bool:
    if typ is int:  # bool is an int subclass in Python, not in JSON
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str) and value != ""
    return isinstance(value, typ)


def validate(request: object) -> tuple[Command, dict] | str:
    """Return (command, args) for a well-formed request, or an error message."""
    if not isinstance(request, dict):
        return f"request must be a JSON object, got {type(request).__name__}"
    name = request.get("cmd")
    if name is None:
        return 'missing field "cmd"'
    if not isinstance(name, str):
        return 'field "cmd" must be a string'
    cmd = REGISTRY.get(name)
    if cmd is None:
        return f"unknown command {name!r}; known: {', '.join(sorted(REGISTRY))}"
    args: dict[str, Any] = {}
    for field, typ in cmd.fields:
        if field not in request:
            return f'{name}: missing field "{field}"'
        value = request[field]
        if not _check_type(value, typ):
            return f'{name}: field "{field}" must be {_TYPE_NAMES.get(typ, typ.__name__)}, got {json.dumps(value)[:60]}'
        args[field] = value
    extra = sorted(set(request) - {"cmd"} - set(args))
    if extra:
        return f"{name}: unexpected field(s): {', '.join(repr(str(x)) for x in extra)}"
    return cmd, args


def parse_line(line: bytes) -> tuple[object, dict | None]:
    """One request line -> (the decoded JSON value, None), or (None, an error reply) when the line
    is not UTF-8 JSON. Pure and total: it never raises."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, error("request is not valid UTF-8")
    if not text.strip():
        return None, error("empty request")
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, error(f"request is not valid JSON: {exc}"[:200])


class Dispatcher:
    """Runs validated commands against a DaemonAPI; one per daemon, shared by all transports."""

    def __init__(self, api: DaemonAPI) -> None:
        self.api = api
        self._xlock: asyncio.Lock | None = None

    async def handle(self, request: object) -> dict:
        """Answer one decoded request. Never raises (except CancelledError)."""
        checked = validate(request)
        if isinstance(checked, str):
            return error(checked)
        cmd, args = checked
        try:
            if cmd.exclusive:
                async with self._lock():
                    result = await cmd.handler(self.api, args)
            else:
                result = await cmd.handler(self.api, args)
            if not isinstance(result, dict):
                raise TypeError(f"returned {type(result).__name__}, expected dict")
        except KeyError as exc:
            return error(f"unknown instance {exc.args[0]!r}" if exc.args else "unknown instance")
        except ReloadError as exc:
            return error(f"reload refused: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the daemon must not kill the control plane
            log.exception("control command %s failed", cmd.name)
            return error(f"internal error in {cmd.name}: {type(exc).__name__}: {exc}")
        reply = {"ok": True}
        reply.update(result)
        reply["ok"] = True
        return reply

    async def handle_line(self, line: bytes) -> dict:
        """Decode one request line (UTF-8 JSON) and answer it."""
        request, problem = parse_line(line)
        if problem is not None:
            return problem
        return await self.handle(request)

    def _lock(self) -> asyncio.Lock:
        """Serialises exclusive commands (created inside the running loop)."""
        if self._xlock is None:
            self._xlock = asyncio.Lock()
        return self._xlock


# ---------------------------------------------------------------- the commands


@command("help", "list the commands and their fields")
async def _help(api: DaemonAPI, args: dict) -> dict:
    return {
        "commands": {
            c.name: {"help": c.help, "fields": {f: t.__name__ for f, t in c.fields}}
            for c in sorted(REGISTRY.values(), key=lambda c: c.name)
        }
    }


@command("status", "per instance: state, priorities, master seen, timers")
async def _status(api: DaemonAPI, args: dict) -> dict:
    return api.status()


@command("history", "state transitions, oldest first: time, instance, from, to, reason")
async def _history(api: DaemonAPI, args: dict) -> dict:
    return {"history": list(api.history())}


@command("maintenance", "drain an instance (priority 0, stay backup) or end the drain",
         instance=str, on=bool)
async def _maintenance(api: DaemonAPI, args: dict) -> dict:
    result = api.maintenance(args["instance"], args["on"])
    return {"instance": args["instance"], "maintenance": args["on"], **(result or {})}


@command("reload", "re-read the config; a refused config keeps the running one", exclusive=True)
async def _reload(api: DaemonAPI, args: dict) -> dict:
    return await api.reload()
