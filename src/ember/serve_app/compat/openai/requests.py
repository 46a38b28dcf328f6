"""The OpenAI request bodies and their translation into ember's messages and options.

Fields ember cannot honour are a 400 naming the field (:func:`~ember.serve_app.compat.shared.
unsupported`); unknown fields are ignored, as newer clients send fields older servers lack.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ember.chat import MAX_COMPLETION_TOKENS, MAX_MESSAGES, ChatMessage, GenerationOptions, ToolCall
from ember.errors import BadRequest
from ember.serve_app.compat.shared import EmberOverrides, stop_sequences, unsupported

__all__ = [
    "ChatIn",
    "CompletionIn",
    "EmbeddingsIn",
    "OpenAIMessageIn",
    "StreamOptions",
    "chat_messages",
    "chat_options",
    "completion_options",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class OpenAIMessageIn(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Sampling(_Body):
    model: str = Field(min_length=1, max_length=500)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    ember: EmberOverrides | None = None


class ChatIn(_Sampling):
    messages: list[OpenAIMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None


class CompletionIn(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None


class EmbeddingsIn(_Body):
    model: str = Field(min_length=1, max_length=500)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    ember: EmberOverrides | None = None


def _refuse_sampling(body: _Sampling) -> None:
    if body.n not in (None, 1):
        raise unsupported("n", "ember answers with one choice")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(body, name):
            raise unsupported(name, "providers are not sent penalties")
    if body.logit_bias:
        raise unsupported("logit_bias", "providers are not sent token biases")


def chat_options(body: ChatIn) -> GenerationOptions:
    """The options of a chat body (``max_completion_tokens`` wins over ``max_tokens``;
    ``tool_choice: "none"`` sends no tools).

    :raises BadRequest: a field ember cannot honour is set; ``param`` names it.
    """
    _refuse_sampling(body)
    if body.logprobs or body.top_logprobs is not None:
        raise unsupported("logprobs", "ember does not return log probabilities")
    if body.response_format is not None and body.response_format.get("type") != "text":
        raise unsupported("response_format", "only text answers are supported")
    tools = body.tools
    if body.tool_choice == "none":
        tools = None
    elif body.tool_choice not in (None, "auto"):
        raise unsupported("tool_choice", "the model chooses whether to call a tool (auto)")
    return GenerationOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop_sequences(body.stop),
        seed=body.seed,
        tools=tools or None,
    )


def completion_options(body: CompletionIn) -> tuple[str, GenerationOptions]:
    """The one prompt of a completion body and its options; raises as :func:`chat_options`."""
    _refuse_sampling(body)
    for name in ("logprobs", "echo", "suffix"):
        if getattr(body, name):
            raise unsupported(name, "ember returns the completion's text only")
    if body.best_of not in (None, 1):
        raise unsupported("best_of", "ember answers with one choice")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise unsupported("prompt", "send one prompt per request")
    options = GenerationOptions(
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop_sequences(body.stop),
        seed=body.seed,
    )
    return prompts[0], options


def _content(message: OpenAIMessageIn, index: int) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            param = f"messages.{index}.content"
            raise unsupported(param, f"only text parts, not {part.get('type')!r}")
        texts.append(part["text"])
    return "\n".join(texts)


def _tool_calls(message: OpenAIMessageIn, index: int) -> list[ToolCall] | None:
    calls = []
    for number, call in enumerate(message.tool_calls or []):
        try:
            calls.append(ToolCall.from_openai(call))
        except ValueError as exc:
            param = f"messages.{index}.tool_calls.{number}"
            raise BadRequest(f"{param}: {exc}", extra={"param": param}) from exc
    return calls or None


def chat_messages(body: ChatIn) -> list[ChatMessage]:
    """The body's messages for the router: ``developer`` is ``system``, text parts joined by
    newlines, tool calls (their arguments text as sent) and tool call ids as sent.

    :raises BadRequest: a content part is not text, or a tool call has no function name
        (``param`` names the message or the call).
    """
    return [
        ChatMessage(
            role="system" if message.role == "developer" else message.role,
            content=_content(message, index),
            name=message.name,
            tool_calls=_tool_calls(message, index),
            tool_call_id=message.tool_call_id,
        )
        for index, message in enumerate(body.messages)
    ]
