"""The tool registry: definitions from the argument models, and every bad call a result the
model sees, never an exception."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from ember.agents import Tool, ToolArgs, ToolErrorCode, ToolRegistry
from ember.chat import ToolCall
from ember.errors import CollectionNotFound, ValidationFailed


class AddArgs(ToolArgs):
    a: int = Field(description="The first number.")
    b: int = 0


async def add(args: AddArgs) -> dict[str, int]:
    return {"sum": args.a + args.b}


ADD = Tool("add", "Add two numbers.", AddArgs, add)


def error_of(content: str) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(content)["error"]
    return error


def test_definitions_are_openai_tools_with_the_models_schema() -> None:
    [definition] = ToolRegistry([ADD]).definitions()
    assert definition["type"] == "function"
    function = definition["function"]
    assert (function["name"], function["description"]) == ("add", "Add two numbers.")
    parameters = function["parameters"]
    assert parameters["type"] == "object"
    assert parameters["required"] == ["a"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["a"] == {
        "description": "The first number.",
        "title": "A",
        "type": "integer",
    }
    assert "title" not in parameters


def test_an_arguments_model_must_forbid_extra_fields() -> None:
    class Loose(BaseModel):
        a: int

    async def handler(args: Loose) -> str:
        return ""

    with pytest.raises(ValueError, match="extra='forbid'"):
        Tool("loose", "", Loose, handler)


def test_two_tools_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="registered already"):
        ToolRegistry([ADD, ADD])


async def test_a_valid_call_runs_and_returns_json() -> None:
    result = await ToolRegistry([ADD]).call(ToolCall.parse("c1", "add", '{"a": 2, "b": 3}'))
    assert result.ok and result.code is None
    assert (result.call_id, result.name, json.loads(result.content)) == ("c1", "add", {"sum": 5})
    message = result.message()
    assert (message.role, message.tool_call_id, message.content) == ("tool", "c1", result.content)


@pytest.mark.parametrize(
    ("name", "raw", "code", "words"),
    [
        ("add", '{"a": 1,', ToolErrorCode.INVALID_JSON, "not a JSON object"),
        ("add", "[1, 2]", ToolErrorCode.INVALID_JSON, "not a JSON object"),
        ("add", '{"a": 1, "c": 2}', ToolErrorCode.INVALID_ARGUMENTS, "unknown parameter 'c'"),
        (
            "add",
            '{"a": "1"}',
            ToolErrorCode.INVALID_ARGUMENTS,
            "a: Input should be a valid integer",
        ),
        ("add", '{"a": 1.5}', ToolErrorCode.INVALID_ARGUMENTS, "a: "),
        ("add", "{}", ToolErrorCode.INVALID_ARGUMENTS, "missing parameter 'a'"),
        ("subtract", '{"a": 1}', ToolErrorCode.UNKNOWN_TOOL, "unknown tool 'subtract'"),
    ],
    ids=[
        "invalid-json",
        "array",
        "made-up-parameter",
        "string-for-int",
        "float-for-int",
        "missing",
        "unknown-tool",
    ],
)
async def test_bad_calls_are_results_with_a_stable_code(
    name: str, raw: str, code: str, words: str
) -> None:
    result = await ToolRegistry([ADD]).call(ToolCall.parse("c1", name, raw))
    assert not result.ok and result.code == code
    error = error_of(result.content)
    assert error["code"] == code and words in error["message"]


async def test_an_ember_error_keeps_its_code_and_other_errors_are_tool_failed() -> None:
    class NoArgs(ToolArgs):
        pass

    async def missing(args: NoArgs) -> str:
        raise CollectionNotFound("no collection named 'x'")

    async def broken(args: NoArgs) -> str:
        raise RuntimeError("disk on fire")

    registry = ToolRegistry(
        [Tool("missing", "", NoArgs, missing), Tool("broken", "", NoArgs, broken)]
    )
    first = await registry.call(ToolCall.parse("1", "missing", ""))
    second = await registry.call(ToolCall.parse("2", "broken", "{}"))
    assert error_of(first.content) == {
        "code": "collection_not_found",
        "message": "no collection named 'x'",
    }
    assert second.code == "tool_failed"
    assert "RuntimeError: disk on fire" in error_of(second.content)["message"]


async def test_cancellation_is_not_swallowed() -> None:
    class NoArgs(ToolArgs):
        pass

    async def slow(args: NoArgs) -> str:
        await asyncio.sleep(10)
        return "done"

    registry = ToolRegistry([Tool("slow", "", NoArgs, slow)])
    task = asyncio.create_task(registry.call(ToolCall.parse("1", "slow", "{}")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_long_results_are_cut_and_say_so() -> None:
    class NoArgs(ToolArgs):
        pass

    async def chatty(args: NoArgs) -> str:
        return "x" * 500

    registry = ToolRegistry([Tool("chatty", "", NoArgs, chatty)], max_result_chars=100)
    result = await registry.call(ToolCall.parse("1", "chatty", "{}"))
    assert result.truncated
    assert result.content == "x" * 100 + "\n[... 400 more characters cut]"


def test_restricted_keeps_the_allowed_tools_and_refuses_unknown_names() -> None:
    class NoArgs(ToolArgs):
        pass

    async def nothing(args: NoArgs) -> str:
        return ""

    registry = ToolRegistry([ADD, Tool("other", "", NoArgs, nothing)])
    assert registry.restricted(["other"]).names == ["other"]
    assert registry.restricted([]).definitions() == []
    with pytest.raises(ValidationFailed, match="unknown tool"):
        registry.restricted(["add", "rm"])
