"""``ember.chat.ToolCall``: its arguments parsed once, the raw text kept, one flag for text
that is no JSON object, and the OpenAI shape in and out."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from ember.chat import ToolCall


@pytest.mark.parametrize(
    ("raw", "arguments"),
    [
        ('{"city": "Paris"}', {"city": "Paris"}),
        ('  {"a": [1, {"b": null}]} ', {"a": [1, {"b": None}]}),
        ("", {}),
        ("   ", {}),
        ("{not json", None),
        ('{"city": "Par', None),
        ("[1, 2]", None),
        ('"Paris"', None),
        ("null", None),
        ("3", None),
        ("[" * 100_000, None),
    ],
    ids=lambda value: repr(value)[:24],
)
def test_parse_keeps_the_text_and_flags_what_is_no_object(
    raw: str, arguments: dict[str, Any] | None
) -> None:
    call = ToolCall.parse("c1", "lookup", raw)
    assert (call.id, call.name, call.raw_arguments) == ("c1", "lookup", raw)
    assert call.arguments == arguments


def test_of_writes_the_text_as_json_dumps_does() -> None:
    call = ToolCall.of("call_0", "lookup", {"city": "Paris", "n": 2})
    assert call.arguments == {"city": "Paris", "n": 2}
    assert call.raw_arguments == json.dumps({"city": "Paris", "n": 2})


@pytest.mark.parametrize(
    ("value", "arguments", "raw"),
    [
        ('{"a": 1}', {"a": 1}, '{"a": 1}'),
        ({"a": 1}, {"a": 1}, '{"a": 1}'),
        (None, {}, "{}"),
        ([1], None, "[1]"),
        ("{broken", None, "{broken"),
    ],
)
def test_from_value_takes_text_objects_and_nothing(
    value: object, arguments: dict[str, Any] | None, raw: str
) -> None:
    call = ToolCall.from_value("c1", "f", value)
    assert (call.arguments, call.raw_arguments) == (arguments, raw)


def test_the_openai_shape_round_trips_exactly() -> None:
    shape = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"city":"Paris"}'},
    }
    call = ToolCall.from_openai(shape)
    assert call == ToolCall("call_1", "lookup", {"city": "Paris"}, '{"city":"Paris"}')
    assert call.to_openai() == shape
    assert json.dumps(call.to_openai()) == json.dumps(shape)


def test_invalid_arguments_round_trip_as_written() -> None:
    shape = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    call = ToolCall.from_openai(shape)
    assert call.arguments is None
    assert call.to_openai() == shape


def test_a_missing_id_is_empty() -> None:
    assert ToolCall.from_openai({"function": {"name": "f", "arguments": "{}"}}).id == ""


@pytest.mark.parametrize(
    "shape",
    [
        "call",
        {"id": "c"},
        {"id": "c", "function": "f"},
        {"id": "c", "function": {"arguments": "{}"}},
        {"id": "c", "function": {"name": 3}},
        {"id": 7, "function": {"name": "f"}},
    ],
)
def test_shapes_without_a_named_function_are_refused(shape: object) -> None:
    with pytest.raises(ValueError, match="tool call"):
        ToolCall.from_openai(shape)


def test_it_crosses_process_boundaries() -> None:
    call = ToolCall.parse("c1", "f", "{bad")
    assert pickle.loads(pickle.dumps(call)) == call


def test_a_chat_message_goes_out_in_the_openai_shape() -> None:
    from ember.chat import ChatMessage

    call = ToolCall.parse("call_1", "lookup", '{"city": "Paris"}')
    calling = ChatMessage("assistant", "", tool_calls=[call])
    answer = ChatMessage("tool", "sunny", tool_call_id="call_1")
    assert calling.to_openai() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert answer.to_openai() == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert ChatMessage("user", "hi").to_openai() == {"role": "user", "content": "hi"}
