"""``/api``: ember speaks the Ollama API, so Ollama's clients and the tools built on them work.

``POST /api/chat`` and ``POST /api/generate`` stream newline-delimited JSON by default (as
Ollama does; ``"stream": false`` gives one object); the last object has ``done: true``,
``done_reason``, ``total_duration``, ``eval_count``, ``prompt_eval_count`` and the other
durations ember measured. ``POST /api/embed`` (``input``: one text or several) and the legacy
``POST /api/embeddings`` (``prompt``); ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``
(with ember's ``ember`` object per model: node, GPU, queue) and ``GET /api/version``.
``/api/show`` lists ``capabilities`` in Ollama's words (``completion``, ``tools``,
``embedding``): an upstream Ollama's own, else what the model's provider can do (an alias: its
first candidate's). Every route needs ``models:use``; overrides as in
:mod:`ember.serve_app.compat.shared`.

``options`` map onto GenerationOptions: ``temperature``, ``top_p``, ``num_predict`` (its
``max_tokens``; -1 and -2 mean no limit), ``stop``, ``seed``; the others are ignored, as Ollama
ignores options its runner lacks. ``keep_alive`` (seconds, or a duration like ``"5m"``; ``0``
unloads after the call, negative keeps) goes to the host of a chat or generate call. A chat
without messages or a generate without a prompt loads a hosted model (``done_reason:
"load"``), or unloads it with ``keep_alive: 0`` (``"unload"``), as Ollama does; for a model of
a remote provider it only checks that the model is known. Models are shared, so unloading is
``admin``'s: from a caller without it, ``keep_alive: 0`` counts as no ``keep_alive`` (the
default), and a ``warm`` model stays loaded whatever a call's ``keep_alive`` says. ``format``,
``think``, ``images``, and generate's ``system``, ``template``, ``suffix`` and ``context`` are
a 400.

Bodies are read as JSON whatever their ``Content-Type``, as Ollama reads them (its documented
``curl URL -d '{...}'`` sends a form type, or none); a body that is not JSON is a 400
``bad_request``. A web page still cannot post to a loopback ember from another origin: the
front door refuses its ``Origin`` (:mod:`ember.serve_app.guards`).

Errors are Ollama's ``{"error": "message"}`` with the HTTP status, plus ember's ``code``. A
stream that fails after its first line ends with one ``{"error": ..., "code":
"stream_interrupted"}`` line. A streamed answer holds one of the caller's stream slots (429
``too_many_streams`` when none is free).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ember import __version__
from ember.auth import Principal, Scope
from ember.chat import GenerationOptions, ModelInfo
from ember.errors import BadRequest, EmberError
from ember.models.protocol import ModelDirectory
from ember.providers.router import RoutedStream, Router
from ember.serve_app.compat.ollama.replies import (
    Lines,
    ollama_capabilities,
    piece,
    running_entry,
    show_body,
    tag_entry,
    whole_body,
)
from ember.serve_app.compat.ollama.requests import (
    ChatIn,
    EmbeddingsIn,
    EmbedIn,
    GenerateIn,
    ShowIn,
    chat_messages,
    generation_options,
)
from ember.serve_app.compat.shared import (
    USE,
    Caller,
    dialect_route,
    dialect_status,
    held,
    keep_alive_seconds,
    open_stream,
    route_request,
    served_by,
    streaming_response,
    unsupported,
)
from ember.serve_app.streams import StreamSlot, StreamSlots

__all__ = ["ollama_error_response", "ollama_router", "shared_keep_alive"]

NDJSON = "application/x-ndjson"


def shared_keep_alive(options: GenerationOptions, caller: Principal) -> GenerationOptions:
    """``options`` as ``caller`` may set them: a ``keep_alive`` of 0 (unload) from a caller
    without ``admin`` becomes the default, so one caller cannot unload a model others use."""
    if options.keep_alive_s == 0 and not caller.allows(Scope.ADMIN):
        return dataclasses.replace(options, keep_alive_s=None)
    return options


def ollama_error_response(error: EmberError) -> JSONResponse:
    """``error`` as Ollama's ``{"error": message}`` (and ember's ``code``) with its status."""
    body = {"error": error.detail, "code": error.code}
    return JSONResponse(body, dialect_status(error), headers=error.headers)


def _is_json(scope_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request says its body is JSON (``application/json`` or ``…+json``)."""
    for name, value in scope_headers:
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return media == "application/json" or (
                media.startswith("application/") and media.endswith("+json")
            )
    return False


async def _read_as_json(request: Request) -> None:
    """Let a POST body of any ``Content-Type`` be parsed as JSON (see the module docstring):
    its type becomes ``application/json`` for the handler.

    :raises BadRequest: the body is not JSON.
    """
    headers: list[tuple[bytes, bytes]] = list(request.scope.get("headers", ()))
    if request.method != "POST" or _is_json(headers):
        return
    raw = await request.body()
    if not raw.strip():
        return
    try:
        json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    kept = [(name, value) for name, value in headers if name != b"content-type"]
    request.scope["headers"] = [*kept, (b"content-type", b"application/json")]


def ollama_router(
    router: Router, directory: ModelDirectory, *, streams: StreamSlots | None = None
) -> APIRouter:
    """The Ollama-compatible routes over ``router`` (calls) and ``directory`` (models); a
    streamed answer takes a slot of ``streams`` (``None``: no limit)."""
    api = APIRouter(
        prefix="/api",
        tags=["ollama"],
        route_class=dialect_route(ollama_error_response, before=_read_as_json),
    )
    slots = StreamSlots(None) if streams is None else streams

    async def lines(
        stream: RoutedStream, model: str, chat: bool, started: int, slot: StreamSlot
    ) -> Response:
        first = await open_stream(stream)
        return streaming_response(stream, first, Lines(model, chat, started), NDJSON, slot)

    async def loaded(model: str, chat: bool, keep_alive_s: float | None) -> Response:
        await directory.show(model)
        unloaded = await directory.load(model, keep_alive_s)
        reason = "unload" if unloaded else "load"
        return JSONResponse({**piece(model, chat, ""), "done": True, "done_reason": reason})

    @api.post("/chat")
    async def chat(body: ChatIn, request: Request, caller: Caller) -> Response:
        """A chat answer: NDJSON lines, or one object with ``"stream": false``."""
        started = time.perf_counter_ns()
        options = shared_keep_alive(generation_options(body, body.tools), caller)
        messages = chat_messages(body)
        route = route_request(request, caller, body.ember)
        if not messages:
            return await loaded(body.model, True, options.keep_alive_s)
        if body.stream:
            slot = slots.take(caller.name)
            return await held(
                slot,
                lambda: lines(
                    router.stream_chat(body.model, messages, options, route),
                    body.model,
                    True,
                    started,
                    slot,
                ),
            )
        answer = await router.chat(body.model, messages, options, route)
        content = whole_body(body.model, True, answer, started)
        return JSONResponse(content, headers=served_by(answer.provider, answer.model))

    @api.post("/generate")
    async def generate(body: GenerateIn, request: Request, caller: Caller) -> Response:
        """A plain completion of ``prompt``: NDJSON lines, or one object."""
        started = time.perf_counter_ns()
        if body.images:
            raise unsupported("images", "ember's models read text only")
        for name in ("system", "template", "suffix", "context"):
            if getattr(body, name):
                raise unsupported(name, "ember completes the prompt as given; use /api/chat")
        options = shared_keep_alive(generation_options(body), caller)
        route = route_request(request, caller, body.ember)
        if not body.prompt:
            return await loaded(body.model, False, options.keep_alive_s)
        if body.stream:
            slot = slots.take(caller.name)
            prompt = body.prompt
            return await held(
                slot,
                lambda: lines(
                    router.stream_generate(body.model, prompt, options, route),
                    body.model,
                    False,
                    started,
                    slot,
                ),
            )
        answer = await router.generate(body.model, body.prompt, options, route)
        content = whole_body(body.model, False, answer, started)
        return JSONResponse(content, headers=served_by(answer.provider, answer.model))

    @api.post("/embed")
    async def embed(body: EmbedIn, request: Request, caller: Caller) -> Response:
        """One vector per input text."""
        started = time.perf_counter_ns()
        if body.dimensions is not None:
            raise unsupported("dimensions", "vectors keep the model's dimension")
        keep_alive_seconds(body.keep_alive)
        texts = [body.input] if isinstance(body.input, str) else body.input
        found = await router.embed(body.model, texts, route_request(request, caller, body.ember))
        content = {
            "model": body.model,
            "embeddings": found.vectors,
            "total_duration": time.perf_counter_ns() - started,
            "prompt_eval_count": found.usage.prompt_tokens,
        }
        return JSONResponse(content, headers=served_by(found.provider, found.model))

    @api.post("/embeddings")
    async def embeddings(body: EmbeddingsIn, request: Request, caller: Caller) -> Response:
        """The legacy form: one ``prompt``, one ``embedding`` (empty for an empty prompt)."""
        keep_alive_seconds(body.keep_alive)
        if not body.prompt:
            return JSONResponse({"embedding": []})
        route = route_request(request, caller, body.ember)
        found = await router.embed(body.model, [body.prompt], route)
        headers = served_by(found.provider, found.model)
        return JSONResponse({"embedding": found.vectors[0]}, headers=headers)

    @api.get("/tags", dependencies=[USE])
    async def tags() -> dict[str, Any]:
        """Every model a request may name."""
        return {"models": [tag_entry(m) for m in await directory.list_models()]}

    async def capabilities(info: ModelInfo) -> list[str]:
        """Ollama's ``capabilities`` of ``info``: the ones its details list, else what its
        provider can do; an alias has its first candidate's."""
        listed = info.details.get("capabilities")
        if isinstance(listed, list):
            return [str(item) for item in listed]
        if info.provider == "alias":
            try:
                first = router.candidates(info.name)[0]
                return await capabilities(await directory.show(str(first)))
            except (EmberError, IndexError):
                return []
        provider = router.providers.get(info.provider)
        can = provider.capabilities if provider is not None else frozenset()
        return ollama_capabilities(can, info.details)

    @api.post("/show", dependencies=[USE])
    async def show(body: ShowIn) -> dict[str, Any]:
        """One model (``model``, or the older ``name``), or 404."""
        name = body.model or body.name
        if name is None:
            raise BadRequest("name the model to show: `model`", extra={"param": "model"})
        info = await directory.show(name)
        return show_body(info, await capabilities(info))

    @api.get("/ps", dependencies=[USE])
    async def ps() -> dict[str, Any]:
        """The models loaded now, most recently used first."""
        return {"models": [running_entry(m) for m in await directory.loaded()]}

    @api.get("/version", dependencies=[USE])
    async def version() -> dict[str, str]:
        """ember's version."""
        return {"version": __version__}

    return api
