"""``/v1``: ember speaks the OpenAI API, so the official clients and tools built on them work.

``POST /v1/chat/completions`` (``tools`` and ``tool_calls`` passed through), ``POST
/v1/completions`` (one prompt), both whole or ``stream: true`` as Server-Sent Events ending in
``data: [DONE]`` (with ``stream_options.include_usage``, a last chunk carries the usage);
``POST /v1/embeddings`` (``encoding_format`` ``float`` or ``base64``); ``GET /v1/models`` and
``GET /v1/models/{model}``. ``model`` is an ember model name (alias, ``provider/model``, a
local model); responses name it as asked, and ``X-Ember-Provider`` / ``X-Ember-Model`` say who
answered. Every route needs ``models:use``; overrides as in :mod:`ember.serve_app.compat.shared`.

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with the error's HTTP
status; ``code`` is ember's stable code. A stream that fails after its first chunk ends with
one ``data: {"error": {...}}`` event (code ``stream_interrupted``) and no ``[DONE]``.
Fields ember cannot honour (``n`` > 1, ``logprobs``, penalties, ``logit_bias``, a JSON
``response_format``, a forced ``tool_choice``, images) are a 400 naming the field; unknown
fields are ignored. A streamed answer holds one of the caller's stream slots (429
``too_many_streams`` when none is free).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ember.chat import Completion
from ember.errors import EmberError
from ember.models.protocol import ModelDirectory
from ember.providers.routed_stream import RoutedStream
from ember.providers.router import Router
from ember.serve_app.compat.openai.replies import (
    Chunks,
    answer_body,
    encode_vector,
    model_entry,
    openai_error,
)
from ember.serve_app.compat.openai.requests import (
    ChatIn,
    CompletionIn,
    EmbeddingsIn,
    chat_messages,
    chat_options,
    completion_options,
)
from ember.serve_app.compat.shared import (
    USE,
    Caller,
    dialect_route,
    dialect_status,
    held,
    open_stream,
    route_request,
    served_by,
    streaming_response,
    unsupported,
)
from ember.serve_app.streams import StreamSlot, StreamSlots

__all__ = ["openai_error", "openai_error_response", "openai_router"]


def openai_error_response(error: EmberError) -> JSONResponse:
    """``error`` as an OpenAI error response with its status and headers."""
    return JSONResponse(openai_error(error), dialect_status(error), headers=error.headers)


async def _streamed(
    body: ChatIn | CompletionIn, stream: RoutedStream, slot: StreamSlot | None = None
) -> Response:
    """``stream`` as Server-Sent Events of chat (or completion) chunks, once its first delta
    came (an error before it is an ordinary error response); ``slot`` goes with the response."""
    first = await open_stream(stream)
    usage = body.stream_options is not None and body.stream_options.include_usage
    events = Chunks(body.model, isinstance(body, ChatIn), usage)
    return streaming_response(stream, first, events, "text/event-stream", slot)


def _whole(body: ChatIn | CompletionIn, answer: Completion) -> JSONResponse:
    """A whole chat (or completion) answer, with who served it in the headers."""
    headers = served_by(answer.provider, answer.model)
    return JSONResponse(answer_body(body.model, answer, isinstance(body, ChatIn)), headers=headers)


def openai_router(
    router: Router, directory: ModelDirectory, *, streams: StreamSlots | None = None
) -> APIRouter:
    """The OpenAI-compatible routes over ``router`` (calls) and ``directory`` (models); a
    streamed answer takes a slot of ``streams`` (``None``: no limit)."""
    api = APIRouter(prefix="/v1", tags=["openai"], route_class=dialect_route(openai_error_response))
    slots = StreamSlots(None) if streams is None else streams

    @api.post("/chat/completions")
    async def chat_completions(body: ChatIn, request: Request, caller: Caller) -> Response:
        """A chat answer, whole or streamed as Server-Sent Events."""
        options = chat_options(body)
        messages = chat_messages(body)
        route = route_request(request, caller, body.ember)
        if body.stream:
            slot = slots.take(caller.name)
            return await held(
                slot,
                lambda: _streamed(
                    body, router.stream_chat(body.model, messages, options, route), slot
                ),
            )
        return _whole(body, await router.chat(body.model, messages, options, route))

    @api.post("/completions")
    async def completions(body: CompletionIn, request: Request, caller: Caller) -> Response:
        """A plain completion of one prompt, whole or streamed as Server-Sent Events."""
        prompt, options = completion_options(body)
        route = route_request(request, caller, body.ember)
        if body.stream:
            slot = slots.take(caller.name)
            return await held(
                slot,
                lambda: _streamed(
                    body, router.stream_generate(body.model, prompt, options, route), slot
                ),
            )
        return _whole(body, await router.generate(body.model, prompt, options, route))

    @api.post("/embeddings")
    async def embeddings(body: EmbeddingsIn, request: Request, caller: Caller) -> Response:
        """One vector per input, as floats or base64 little-endian float32."""
        if body.dimensions is not None:
            raise unsupported("dimensions", "vectors keep the model's dimension")
        texts = [body.input] if isinstance(body.input, str) else body.input
        found = await router.embed(body.model, texts, route_request(request, caller, body.ember))
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, body.encoding_format)}
            for i, v in enumerate(found.vectors)
        ]
        tokens = found.usage.prompt_tokens
        content = {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return JSONResponse(content, headers=served_by(found.provider, found.model))

    @api.get("/models", dependencies=[USE])
    async def list_models() -> dict[str, Any]:
        """Every model a request may name."""
        return {"object": "list", "data": [model_entry(m) for m in await directory.list_models()]}

    @api.get("/models/{model:path}", dependencies=[USE])
    async def retrieve_model(model: str) -> dict[str, Any]:
        """One model, or 404 ``provider_model_not_found``."""
        return model_entry(await directory.show(model))

    return api
