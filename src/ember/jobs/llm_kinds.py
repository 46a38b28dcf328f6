"""The ``chat``, ``generate`` and ``ask`` job kinds, over the provider router.

Each streams its answer as ``token`` events whose texts, joined, are the answer. Deltas that
arrive while the previous event is being published are joined into the next one, so a model
faster than the event hub costs one ``job_events`` row per burst, not per token, and a slow
one still shows every token as it comes.

A failure before the first delta falls back as the router does; one after it fails the job
with ``stream_interrupted``, the text so far kept in the token events and in a ``log`` event
(``partial_text``). Cancelling the job raises ``CancelledError`` inside the stream: the
provider's stream is closed (the router records its usage), the text so far is published,
a ``log`` event says so, and the cancel goes on up.

``ask`` answers a question from a collection. It retrieves ``top_k`` hits and packs them
under ``budget = context_length(model) - scaffold - max_tokens`` tokens, counted with
``tokenizer(model)`` (the model's own tokenizer; ``model`` is the alias as given). The
scaffold is the prompt without context plus :data:`TEMPLATE_TOKENS` for the markers a chat
template adds. The prompt is two chat messages, a system message with the instructions and
the numbered context blocks and a user message with the question, so that the plain ``qa``
template of a base model renders it as ``…Context:\\n[1] …\\nQuestion: …\\nAnswer:`` and a chat
model gets the usual shape. Only the passages the answer cites as ``[n]`` are citations. With
nothing retrieved it still answers, the prompt saying so. A missing collection fails the job
with ``collection_not_found``, a ``max_tokens`` that leaves no room for context with
``validation_failed``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ember.auth.scopes import Scope
from ember.chat import MAX_COMPLETION_TOKENS, MAX_MESSAGES, ChatMessage, GenerationOptions
from ember.errors import EmberError, StreamInterrupted, ValidationFailed
from ember.filters import MAX_TERMS_CEILING, parse_filter
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind
from ember.memory.packer import ContextPack, ContextPacker
from ember.memory.service import MemoryService
from ember.providers.protocol import Tokenizer
from ember.providers.router import RoutedStream, Router, RouteRequest

__all__ = [
    "TEMPLATE_TOKENS",
    "AskInput",
    "ChatInput",
    "ChatMessageIn",
    "GenerateInput",
    "ask_messages",
    "llm_kinds",
]

TEMPLATE_TOKENS = 16
"""Tokens ``ask`` reserves beyond its counted scaffold for a chat template's role markers."""

_INSTRUCTIONS = (
    "Answer the question using the numbered context passages. "
    "Cite each passage you use by its number, like [1]."
)
_NOTHING = "(no passages found)"
_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


class _Routed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("default", min_length=1, max_length=256, description="Model alias.")
    max_tokens: int | None = Field(None, ge=1, le=MAX_COMPLETION_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    provider: str | None = Field(None, min_length=1, description="Only this provider's models.")
    fallback: bool = Field(True, description="Fall back to later candidates of the alias.")

    def options(self) -> GenerationOptions:
        return GenerationOptions(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=tuple(self.stop),
            seed=self.seed,
        )


class ChatMessageIn(BaseModel):
    """One chat turn of a ``chat`` job."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class ChatInput(_Routed):
    """Input of a ``chat`` job."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)


class GenerateInput(_Routed):
    """Input of a ``generate`` job."""

    prompt: str = Field(min_length=1, max_length=1_000_000)


class AskInput(_Routed):
    """Input of an ``ask`` job; ``max_tokens`` is the answer's share of the context window."""

    collection: str = Field(min_length=1, max_length=128)
    question: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(8, ge=1, le=100)
    filter: dict[str, Any] | None = Field(None, description="Metadata filter (docs/memory.md).")
    max_tokens: int = Field(256, ge=1, le=MAX_COMPLETION_TOKENS)

    @field_validator("filter")
    @classmethod
    def _parses(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:  # the grammar, now; memory.max_filter_terms applies when the job runs
            parse_filter(value, max_terms=MAX_TERMS_CEILING)
        except EmberError as exc:
            raise ValueError(exc.detail) from exc
        return value


def ask_messages(context: str, question: str) -> list[ChatMessage]:
    """The ``ask`` prompt: instructions and numbered ``context`` blocks, then the question."""
    return [
        ChatMessage("system", f"{_INSTRUCTIONS}\n\nContext:\n{context or _NOTHING}"),
        ChatMessage("user", question),
    ]


class _Tokens:
    """Publishes streamed text as ``token`` events, one event in flight at a time."""

    def __init__(self, context: JobContext) -> None:
        self._context = context
        self._texts: list[str] = []
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._pump = asyncio.ensure_future(self._run())

    @property
    def text(self) -> str:
        return "".join(self._texts)

    def add(self, text: str) -> None:
        if self._pump.done():
            self._pump.result()
        if text:
            self._texts.append(text)
            self._pending.append(text)
            self._wake.set()

    async def close(self) -> None:
        """Publish what is pending and stop; raises what publishing raised."""
        self._closing = True
        self._wake.set()
        await self._pump

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                await self._context.token(text)
            if self._closing:
                return


async def _consume(context: JobContext, stream: RoutedStream, alias: str) -> dict[str, Any]:
    """Stream ``stream`` into token events; the ``chat`` result, whose usage is the one the
    router recorded (the provider's, else the estimate, then ``estimated``)."""
    tokens = _Tokens(context)
    finish: str | None = None
    ended: tuple[str, dict[str, Any]] | None = None
    try:
        async for delta in stream:
            tokens.add(delta.text)
            finish = delta.finish_reason or finish
    except StreamInterrupted as exc:
        cause = exc.extra.get("cause_code")
        ended = ("the stream broke off; the text so far is kept", {"cause_code": cause})
        raise
    except asyncio.CancelledError:
        ended = ("cancelled; the provider's stream was closed", {})
        raise
    finally:
        await stream.aclose()
        await tokens.close()
        if ended is not None:
            await context.log(ended[0], partial_text=tokens.text, **ended[1])
    usage = stream.usage
    assert usage is not None, "a routed stream that ended has its usage"
    return {
        "text": tokens.text,
        "model": stream.model,
        "provider": stream.provider,
        "alias": alias,
        "finish_reason": finish,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "estimated": stream.usage_estimated,
        },
    }


def _route(context: JobContext, payload: _Routed) -> RouteRequest:
    job = context.job
    return RouteRequest(
        principal=job.principal,
        workspace=job.workspace,
        request_id=job.request_id,
        job_id=job.id,
        provider=payload.provider,
        fallback=payload.fallback,
    )


def _cited(answer: str, pack: ContextPack) -> list[dict[str, Any]]:
    numbers = {int(n) for group in _CITE.findall(answer) for n in group.split(",")}
    return [
        {key: value for key, value in asdict(chunk).items() if key != "tokens"}
        for chunk in pack.chunks
        if chunk.citation in numbers
    ]


def llm_kinds(
    router: Callable[[], Router],
    memory: Callable[[], MemoryService],
    tokenizer: Callable[[str], Tokenizer],
    context_length: Callable[[str], int],
) -> list[JobKind]:
    """The model kinds. ``router()`` is called on the event loop and must not block;
    ``memory()``, ``tokenizer(alias)`` and ``context_length(alias)`` (tokens the model
    takes, prompt and answer together) are called in a worker thread and may load things."""

    async def chat(context: JobContext, payload: ChatInput) -> dict[str, Any]:
        messages = [ChatMessage(m.role, m.content) for m in payload.messages]
        stream = router().stream_chat(
            payload.model, messages, payload.options(), _route(context, payload)
        )
        return await _consume(context, stream, payload.model)

    async def generate(context: JobContext, payload: GenerateInput) -> dict[str, Any]:
        stream = router().stream_generate(
            payload.model, payload.prompt, payload.options(), _route(context, payload)
        )
        return await _consume(context, stream, payload.model)

    def retrieve(payload: AskInput, workspace: str) -> tuple[ContextPack, int]:
        service = memory().in_workspace(workspace)
        service.collections.get(payload.collection)
        model_tokenizer = tokenizer(payload.model)
        scaffold = sum(model_tokenizer.count(m.content) for m in ask_messages("", payload.question))
        limit = context_length(payload.model)
        budget = limit - scaffold - TEMPLATE_TOKENS - payload.max_tokens
        if budget <= 0:
            detail = (
                f"{payload.model!r} takes {limit} tokens: the prompt's {scaffold + TEMPLATE_TOKENS}"
                f" and max_tokens {payload.max_tokens} leave no room for context"
            )
            field = {"path": "input.max_tokens", "message": detail, "type": "value_error"}
            raise ValidationFailed(detail, errors=[field])
        hits = service.search(
            payload.collection,
            payload.question,
            payload.top_k,
            where=service.parse_filter(payload.filter),
        )
        return ContextPacker(model_tokenizer).pack(hits, budget), len(hits)

    async def ask(context: JobContext, payload: AskInput) -> dict[str, Any]:
        pack, retrieved = await asyncio.to_thread(retrieve, payload, context.job.workspace)
        summary = (
            f"retrieved {retrieved} passages; packed {len(pack.chunks)} in "
            f"{pack.tokens_used} of {pack.budget} tokens"
        )
        if not pack.chunks:
            summary += "; answering without context"
        await context.log(
            summary,
            retrieved=retrieved,
            packed=len(pack.chunks),
            dropped=len(pack.dropped),
            tokens_used=pack.tokens_used,
            budget=pack.budget,
        )
        messages = ask_messages(pack.text, payload.question)
        stream = router().stream_chat(
            payload.model, messages, payload.options(), _route(context, payload)
        )
        result = await _consume(context, stream, payload.model)
        answer = result.pop("text")
        return {
            "answer": answer,
            "citations": _cited(answer, pack),
            "context": [asdict(chunk) for chunk in pack.chunks],
            "dropped": [asdict(chunk) for chunk in pack.dropped],
            "retrieved": retrieved,
            "tokens_used": pack.tokens_used,
            "budget": pack.budget,
            **result,
        }

    return [
        JobKind(
            "chat",
            ChatInput,
            chat,
            "Chat with a model; the answer streams as tokens.",
            scopes=frozenset({Scope.MODELS_USE}),
        ),
        JobKind(
            "generate",
            GenerateInput,
            generate,
            "Complete a prompt, streamed as tokens.",
            scopes=frozenset({Scope.MODELS_USE}),
        ),
        JobKind(
            "ask",
            AskInput,
            ask,
            "Answer from a collection's passages, citing them [n].",
            scopes=frozenset({Scope.MEMORY_READ, Scope.MODELS_USE}),
        ),
    ]
