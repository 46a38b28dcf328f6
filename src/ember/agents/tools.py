"""Typed tools and the registry that checks a model's calls before running them.

A :class:`Tool` is a name, a description, a pydantic model of its arguments (a
:class:`ToolArgs`: unknown parameters are refused) and an async handler taking one instance.
A :class:`SchemaTool` (an MCP server's tool) has a JSON schema instead, and its arguments are
checked against it (``jsonschema``) and passed on as the object given.
:meth:`ToolRegistry.call` turns every failure into a :class:`ToolResult` the model sees,
never an exception: arguments that are not a JSON object (``invalid_json``), a tool the
registry lacks (``unknown_tool``), arguments that fail validation in strict mode (a made-up
parameter, a wrong type, a missing one: ``invalid_arguments``), an :class:`EmberError` the
handler raises (its own ``code``: ``policy_denied``, ``collection_not_found``, ...), a
:class:`ToolFailure` (the tool's own failure, ``tool_failed``, shown as it is) and any other
exception (``tool_failed``). Cancellation propagates.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from jsonschema import exceptions as schema_errors  # type: ignore[import-untyped]
from jsonschema import validators as schema_validators
from pydantic import BaseModel, ConfigDict, ValidationError

from ember.chat import ChatMessage, ToolCall
from ember.errors import EmberError, ValidationFailed

__all__ = [
    "AnyTool",
    "InvalidArguments",
    "SchemaTool",
    "Tool",
    "ToolArgs",
    "ToolErrorCode",
    "ToolFailure",
    "ToolRegistry",
    "ToolResult",
]

log = logging.getLogger("ember.agents.tools")

A = TypeVar("A", bound=BaseModel)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

DEFAULT_RESULT_CHARS = 20_000
"""The most characters of one tool result the model is shown (the rest is cut, and said so)."""


class ToolErrorCode:
    """The stable codes of the failures the registry itself reports (handlers' own
    :class:`EmberError` codes come through as they are)."""

    INVALID_JSON = "invalid_json"
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    TOOL_FAILED = "tool_failed"


class ToolArgs(BaseModel):
    """Base of every tool's arguments: frozen, unknown parameters refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InvalidArguments(ValueError):
    """Raised by a tool's ``parse``: the arguments do not fit; the message says why."""


class ToolFailure(Exception):
    """Raised by a handler for a failure of the tool itself (an MCP ``isError`` result): the
    model sees ``tool_failed`` with the message as it is, and nothing is logged as a bug."""


MAX_SCHEMA_ERRORS = 5
"""The most schema violations one ``invalid_arguments`` message names."""


@dataclass(frozen=True)
class Tool(Generic[A]):
    """One function the model may call. ``handler`` returns text, or anything
    ``json.dumps`` takes (a pydantic model is dumped first); it may raise."""

    name: str
    description: str
    arguments: type[A]
    handler: Callable[[A], Awaitable[object]]

    def __post_init__(self) -> None:
        if self.arguments.model_config.get("extra") != "forbid":
            raise ValueError(f"tool {self.name!r}: its arguments model must set extra='forbid'")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r}: 1 to 64 letters, digits, '_' or '-'")

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (pydantic's, without the model's title)."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        return schema

    def definition(self) -> dict[str, Any]:
        """The OpenAI tool definition: ``{"type": "function", "function": {...}}``."""
        function = {"name": self.name, "description": self.description, "parameters": self.schema()}
        return {"type": "function", "function": function}

    def parse(self, raw: dict[str, Any]) -> A:
        """``raw`` validated strictly, as JSON (no ``"5"`` for an int).

        :raises ValidationError: the arguments do not fit the model.
        """
        return self.arguments.model_validate_json(json.dumps(raw), strict=True)


def _where(path: Iterable[object]) -> str:
    return ".".join(str(part) for part in path) or "arguments"


@dataclass(frozen=True)
class SchemaTool:
    """A tool whose arguments are described by a JSON schema (an MCP server's
    ``inputSchema``): offered to the model with that schema, checked against it before the
    call (the schema's ``$schema`` draft, 2020-12 when it names none; formats are not
    checked), and handed to ``handler`` as the object given.

    :raises ValueError: the name is not 1 to 64 letters, digits, ``_`` or ``-``, or the
        schema is not a valid JSON schema of an object.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Callable[[dict[str, Any]], Awaitable[object]]
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r}: 1 to 64 letters, digits, '_' or '-'")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: its schema must describe an object")
        schema = dict(self.parameters)
        with warnings.catch_warnings():  # an unknown $schema: the default draft, quietly
            warnings.simplefilter("ignore", DeprecationWarning)
            cls = schema_validators.validator_for(
                schema, default=schema_validators.Draft202012Validator
            )
        try:
            cls.check_schema(schema)
        except schema_errors.SchemaError as exc:
            raise ValueError(f"tool {self.name!r}: invalid JSON schema: {exc.message}") from exc
        object.__setattr__(self, "_validator", cls(schema))

    def schema(self) -> dict[str, Any]:
        return dict(self.parameters)

    def definition(self) -> dict[str, Any]:
        """The OpenAI tool definition, ``parameters`` being the schema as given."""
        function = {"name": self.name, "description": self.description, "parameters": self.schema()}
        return {"type": "function", "function": function}

    def parse(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` when it fits the schema.

        :raises InvalidArguments: it does not; the message names each violation (at most
            :data:`MAX_SCHEMA_ERRORS`) and the parameters the schema declares.
        """
        try:
            found = list(self._validator.iter_errors(raw))
        except Exception as exc:  # a $ref that cannot be resolved (nothing is fetched), say
            raise InvalidArguments(f"the tool's schema cannot be applied: {exc}") from exc
        errors = sorted(found, key=lambda e: [str(part) for part in e.absolute_path])
        if not errors:
            return raw
        lines = [f"{_where(e.absolute_path)}: {e.message}" for e in errors[:MAX_SCHEMA_ERRORS]]
        if len(errors) > MAX_SCHEMA_ERRORS:
            lines.append(f"{len(errors) - MAX_SCHEMA_ERRORS} more")
        declared = self.parameters.get("properties")
        allowed = ", ".join(sorted(declared)) if isinstance(declared, dict) and declared else "none"
        raise InvalidArguments(f"{'; '.join(lines)} (parameters: {allowed})")


AnyTool: TypeAlias = Tool[Any] | SchemaTool
"""What a :class:`ToolRegistry` holds."""


@dataclass(frozen=True)
class ToolResult:
    """What one call gave: ``content`` is what the model sees (the result as text or JSON,
    or for a failure ``{"error": {"code", "message"}}``); ``code`` is ``None`` on success."""

    call_id: str
    name: str
    content: str
    code: str | None = None
    duration_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.code is None

    def message(self) -> ChatMessage:
        """The ``tool`` message that answers the call."""
        return ChatMessage(role="tool", content=self.content, tool_call_id=self.call_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "ok": self.ok,
            "code": self.code,
            "duration_s": round(self.duration_s, 6),
            "truncated": self.truncated,
        }


def _failure(call: ToolCall, code: str, message: str, started: float) -> ToolResult:
    content = json.dumps({"error": {"code": code, "message": message}})
    return ToolResult(call.id, call.name, content, code, time.monotonic() - started)


def _validation_message(tool: Tool[Any], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown parameter {where!r}")
        elif error["type"] == "missing":
            lines.append(f"missing parameter {where!r}")
        else:
            lines.append(f"{where}: {error['msg']}")
    allowed = ", ".join(sorted(tool.arguments.model_fields)) or "none"
    return f"invalid arguments for {tool.name}: {'; '.join(lines)} (parameters: {allowed})"


def _content(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


class ToolRegistry:
    """The tools one run may call, by name; ``max_result_chars`` caps what the model sees
    of each result."""

    def __init__(
        self, tools: Iterable[AnyTool] = (), *, max_result_chars: int = DEFAULT_RESULT_CHARS
    ) -> None:
        self._tools: dict[str, AnyTool] = {}
        self.max_result_chars = max_result_chars
        for tool in tools:
            self.add(tool)

    def add(self, tool: AnyTool) -> None:
        """Register ``tool``.

        :raises ValueError: a tool of that name is registered already.
        """
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is registered already")
        self._tools[tool.name] = tool

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[AnyTool]:
        return iter(list(self._tools.values()))

    def restricted(self, allowed: Collection[str]) -> ToolRegistry:
        """A registry of only the ``allowed`` tools (a profile's allow-list).

        :raises ValidationFailed: ``allowed`` names a tool this registry lacks.
        """
        missing = sorted(set(allowed) - set(self._tools))
        if missing:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ValidationFailed(
                f"unknown tool(s) {', '.join(missing)}; available: {known}",
                errors=[
                    {"path": "tools", "message": f"unknown tool {m!r}", "type": "unknown_tool"}
                    for m in missing
                ],
            )
        kept = [tool for name, tool in self._tools.items() if name in set(allowed)]
        return ToolRegistry(kept, max_result_chars=self.max_result_chars)

    def definitions(self) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` list, in registration order."""
        return [tool.definition() for tool in self._tools.values()]

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call; every failure is a :class:`ToolResult` with a ``code``."""
        started = time.monotonic()
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            message = f"unknown tool {call.name!r}; available tools: {known}"
            return _failure(call, ToolErrorCode.UNKNOWN_TOOL, message, started)
        if call.arguments is None:
            message = (
                f"the arguments of {call.name} are not a JSON object: {call.raw_arguments[:200]!r}"
            )
            return _failure(call, ToolErrorCode.INVALID_JSON, message, started)
        try:
            args = tool.parse(call.arguments)
        except ValidationError as exc:
            assert isinstance(tool, Tool)
            message = _validation_message(tool, exc)
            return _failure(call, ToolErrorCode.INVALID_ARGUMENTS, message, started)
        except InvalidArguments as exc:
            message = f"invalid arguments for {tool.name}: {exc}"
            return _failure(call, ToolErrorCode.INVALID_ARGUMENTS, message, started)
        try:
            value = await tool.handler(args)
        except EmberError as exc:
            return _failure(call, exc.code, exc.detail, started)
        except ToolFailure as exc:
            message = str(exc) or f"{call.name} failed"
            return _failure(call, ToolErrorCode.TOOL_FAILED, message, started)
        except Exception as exc:
            log.warning("tool %s failed", call.name, exc_info=True)
            message = f"{call.name} failed: {type(exc).__name__}: {exc}"
            return _failure(call, ToolErrorCode.TOOL_FAILED, message, started)
        content = _content(value)
        truncated = len(content) > self.max_result_chars
        if truncated:
            cut = len(content) - self.max_result_chars
            content = f"{content[: self.max_result_chars]}\n[... {cut} more characters cut]"
        return ToolResult(call.id, call.name, content, None, time.monotonic() - started, truncated)
