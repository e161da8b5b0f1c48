"""The control command table: one registry serving every transport.

Every command is registered once with `@command(name, help, field=type, ...)`. The unix socket
server, `vmacctl`, and the daemon's own SIGHUP (which dispatches `{"cmd": "reload"}`) all go
through `Dispatcher.handle()`, so a command behaves the same whichever way it arrives.

A request is a JSON object `{"cmd": NAME, ...fields}`. A reply is always a dict: `{"ok": True,
...result}` or `{"ok": False, "error": "..."}`. Malformed requests, unknown commands, wrong field
types, unknown instances, refused reloads and even bugs in a handler become error replies; they
never raise out of `handle()`. A handler returns its result, or a `Deferred` when the answer comes
later (a reload waiting for handovers, a maintenance drain waiting for the successor): the reply
is sent when it resolves.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vmacd.loop import Deferred

if TYPE_CHECKING:
    from vmacd.status import HistoryEntry

log = logging.getLogger("vmacd.control")

#: A request or a reply: a JSON object. Its values are JSON values, typed as json.loads gives
#: them (Any): validate() checks every field of a request against the type its command declares
#: before a handler reads it; a reply is only encoded (server.encode_reply).
JsonObject = dict[str, Any]


class ReloadError(Exception):
    """Raised by `DaemonAPI.reload()` when the new config is refused; str() is shown to the user."""


class DaemonAPI(Protocol):
    """What the daemon offers the control plane (implemented by vmacd.daemon)."""

    def status(self) -> JsonObject: ...

    def history(self) -> list[HistoryEntry]: ...

    def maintenance(self, instance: str, on: bool, force: bool,
                    persist: bool) -> Deferred[JsonObject]: ...

    def clear(self, instance: str) -> JsonObject: ...

    def reload(self) -> Deferred[JsonObject]: ...


Result = JsonObject | Deferred[JsonObject]
Handler = Callable[[DaemonAPI, JsonObject], Result]
Reply = Callable[[JsonObject], None]


@dataclass(frozen=True)
class Command:
    """One registry entry: the name, the one-line help, the typed fields and the handler."""

    name: str
    help: str
    fields: tuple[tuple[str, type], ...]
    handler: Handler
    exclusive: bool = False                     # run one at a time (reload)
    optional: tuple[tuple[str, type, object], ...] = ()   # (field, type, default)


REGISTRY: dict[str, Command] = {}


def command(name: str, help: str, *, exclusive: bool = False,
            optional: dict[str, tuple[type, object]] | None = None,
            **fields: type) -> Callable[[Handler], Handler]:
    """Register a handler `fn(api, args) -> dict | Deferred` for `{"cmd": name, **fields}`.

    `fields` maps each required request field to its type (str, bool, int); `optional` maps
    optional fields to (type, default). The dispatcher checks presence and type before the
    handler runs and refuses unexpected fields. `exclusive` commands run one at a time."""

    def register(fn: Handler) -> Handler:
        if name in REGISTRY:
            raise ValueError(f"control command {name!r} registered twice")
        extra = tuple((k, t, d) for k, (t, d) in (optional or {}).items())
        REGISTRY[name] = Command(name, help, tuple(fields.items()), fn, exclusive, extra)
        return fn

    return register


def error(message: str) -> JsonObject:
    """An error reply."""
    return {"ok": False, "error": message}


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def _check_type(value: object, typ: type) -> bool:
    if typ is int:  # bool is an int subclass in Python, not in JSON
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str) and value != ""
    return isinstance(value, typ)


def validate(request: object) -> tuple[Command, JsonObject] | str:
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
    args: JsonObject = {}
    specs = [(f, t, True, None) for f, t in cmd.fields] + [(f, t, False, d) for f, t, d in cmd.optional]
    for field, typ, required, default in specs:
        if field not in request:
            if required:
                return f'{name}: missing field "{field}"'
            args[field] = default
            continue
        value = request[field]
        if not _check_type(value, typ):
            shown = json.dumps(value)[:60]
            return f'{name}: field "{field}" must be {_TYPE_NAMES.get(typ, typ.__name__)}, got {shown}'
        args[field] = value
    extra = sorted(set(request) - {"cmd"} - set(args))
    if extra:
        return f"{name}: unexpected field(s): {', '.join(repr(str(x)) for x in extra)}"
    return cmd, args


def parse_line(line: bytes) -> tuple[object, JsonObject | None]:
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
        self._exclusive_busy = False
        self._waiting: deque[tuple[Command, JsonObject, Reply]] = deque()

    def handle(self, request: object, reply: Reply) -> None:
        """Answer one decoded request through `reply(dict)` (now, or when a Deferred resolves).
        Never raises."""
        checked = validate(request)
        if isinstance(checked, str):
            reply(error(checked))
            return
        cmd, args = checked
        if cmd.exclusive:
            self._waiting.append((cmd, args, reply))
            self._next_exclusive()
            return
        self._run(cmd, args, reply)

    def handle_line(self, line: bytes, reply: Reply) -> None:
        """Decode one request line (UTF-8 JSON) and answer it."""
        request, problem = parse_line(line)
        if problem is not None:
            reply(problem)
        else:
            self.handle(request, reply)

    def _next_exclusive(self) -> None:
        if self._exclusive_busy or not self._waiting:
            return
        cmd, args, reply = self._waiting.popleft()
        self._exclusive_busy = True

        def done(answer: JsonObject) -> None:
            self._exclusive_busy = False
            reply(answer)
            self._next_exclusive()

        self._run(cmd, args, done)

    def _run(self, cmd: Command, args: JsonObject, reply: Reply) -> None:
        try:
            result = cmd.handler(self.api, args)
        except Exception as exc:       # noqa: BLE001 - a bug must not kill the control plane
            reply(_failure(cmd, exc))
            return
        if isinstance(result, Deferred):       # a later answer may be a refusal (ok: false)
            result.then(lambda value: reply(_finish(cmd, value, refusal=True)))
        else:
            reply(_finish(cmd, result))


def _failure(cmd: Command, exc: Exception) -> JsonObject:
    if isinstance(exc, KeyError):
        return error(f"unknown instance {exc.args[0]!r}" if exc.args else "unknown instance")
    if isinstance(exc, ReloadError):
        return error(f"reload refused: {exc}")
    log.error("control command %s failed", cmd.name, exc_info=exc)
    return error(f"internal error in {cmd.name}: {type(exc).__name__}: {exc}")


def _finish(cmd: Command, result: object, refusal: bool = False) -> JsonObject:
    if isinstance(result, Exception):
        return _failure(cmd, result)
    if not isinstance(result, dict):
        return error(f"internal error in {cmd.name}: returned {type(result).__name__}, expected dict")
    if refusal and result.get("ok") is False:
        return {"ok": False, "error": str(result.get("error", "refused"))}
    reply: JsonObject = {"ok": True}
    reply.update(result)
    reply["ok"] = True
    return reply


# ---------------------------------------------------------------- the commands


@command("help", "list the commands and their fields")
def _help(api: DaemonAPI, args: JsonObject) -> JsonObject:
    return {
        "commands": {
            c.name: {"help": c.help, "fields": {f: t.__name__ for f, t in c.fields},
                     **({"optional": {f: t.__name__ for f, t, _d in c.optional}}
                        if c.optional else {})}
            for c in sorted(REGISTRY.values(), key=lambda c: c.name)
        }
    }


@command("status", "per instance: state, priorities, master seen, timers")
def _status(api: DaemonAPI, args: JsonObject) -> JsonObject:
    return api.status()


@command("history", "state transitions, oldest first: time, instance, from, to, reason")
def _history(api: DaemonAPI, args: JsonObject) -> JsonObject:
    return {"history": list(api.history())}


@command("maintenance", "drain an instance (priority 0, stay backup) or end the drain; refused "
         "when no other router would be master, unless force", instance=str, on=bool,
         optional={"force": (bool, False), "persist": (bool, False)})
def _maintenance(api: DaemonAPI, args: JsonObject) -> Result:
    return api.maintenance(args["instance"], args["on"], args["force"], args["persist"])


@command("clear", "forget an instance's resource failures so it may become master again",
         instance=str)
def _clear(api: DaemonAPI, args: JsonObject) -> Result:
    return api.clear(args["instance"])


@command("reload", "re-read the config; a refused config keeps the running one", exclusive=True)
def _reload(api: DaemonAPI, args: JsonObject) -> Result:
    return api.reload()
