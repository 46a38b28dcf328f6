"""A fake OpenAI-compatible embeddings server: real HTTP on 127.0.0.1, deterministic vectors.

It speaks ``POST /v1/embeddings`` and ``GET /v1/models`` as the OpenAI API does, so the official
client talks to it unchanged (including its default ``encoding_format: base64``). Vectors are a
bag-of-words hashing embedding (:func:`bag_of_words`): texts sharing words get similar vectors,
texts sharing none get near-orthogonal ones. They are raw word counts, deliberately not
normalized, so clients must normalize them themselves.

Failure injection: :meth:`FakeOpenAIServer.fail_next` answers the next calls with an HTTP error
in OpenAI's error format (429 with ``Retry-After``, 500, 401, 400, ...);
:meth:`FakeOpenAIServer.stall_next` delays them past a client's timeout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = ["FakeCall", "FakeOpenAIServer", "bag_of_words", "words_of"]

_WORD = re.compile(r"\w+")
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def bag_of_words(words: list[str], dim: int) -> np.ndarray:
    """Raw signed counts of hashed words: word ``w`` adds ±1 at ``blake2b(w) % dim``."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    if not vector.any():
        vector[0] = 1.0
    return vector


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text (the whole text when it has none)."""
    return _WORD.findall(text.lower()) or [text]


@dataclass(frozen=True)
class FakeCall:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Fault:
    status: int | None
    stall_s: float = 0.0
    retry_after: float | None = None
    message: str = "injected failure"


@dataclass
class _State:
    faults: deque[_Fault] = field(default_factory=deque)
    calls: list[FakeCall] = field(default_factory=list)


class FakeOpenAIServer:
    """A fake ``/v1/embeddings`` server in a background thread; use it as a context manager.

    ``dim`` is the length of every vector; ``models`` are the model names it knows (others get
    404 ``model_not_found``); with ``api_key`` set, requests without ``Bearer <api_key>`` get 401.
    ``scramble`` makes responses list their items in reverse order (``index`` still correct).
    """

    def __init__(
        self, dim: int = 64, models: tuple[str, ...] = ("fake-embed",), api_key: str | None = None
    ) -> None:
        self.dim = dim
        self.models = models
        self.api_key = api_key
        self.scramble = False
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> list[FakeCall]:
        """Requests received so far, oldest first."""
        with self._lock:
            return list(self._state.calls)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        message: str = "injected failure",
    ) -> None:
        """Answer the next ``times`` embedding calls with ``status`` in OpenAI's error format."""
        with self._lock:
            for _ in range(times):
                self._state.faults.append(_Fault(status, retry_after=retry_after, message=message))

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` embedding calls for ``seconds`` before answering normally."""
        with self._lock:
            self._state.faults.extend(_Fault(None, stall_s=seconds) for _ in range(times))

    def reset(self) -> None:
        """Forget pending faults and recorded calls; switch ``scramble`` off."""
        with self._lock:
            self._state = _State()
            self.scramble = False

    def start(self) -> FakeOpenAIServer:
        """Listen on a free port of 127.0.0.1 and wait until the server accepts requests."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; stalled calls end at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: Request, body: dict[str, Any]) -> _Fault | None:
        call = FakeCall(request.url.path, body, dict(request.headers))
        with self._lock:
            self._state.calls.append(call)
            return self._state.faults.popleft() if self._state.faults else None

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models(request: Request) -> JSONResponse:
            if (denied := self._check_key(request)) is not None:
                return denied
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "ember-fake"}
                for name in self.models
            ]
            return JSONResponse({"object": "list", "data": data})

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> JSONResponse:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "We could not parse the JSON body of your request.")
            if not isinstance(body, dict):
                return _error(400, "The request body must be a JSON object.")
            fault = self._record(request, body)
            if fault is not None and fault.status is None:
                await self._stall(fault.stall_s)
            elif fault is not None and fault.status is not None:
                return _error(fault.status, fault.message, fault.retry_after)
            if (denied := self._check_key(request)) is not None:
                return denied
            return self._embed(body)

        return app

    async def _stall(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    def _check_key(self, request: Request) -> JSONResponse | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided.")

    def _embed(self, body: dict[str, Any]) -> JSONResponse:
        model = body.get("model")
        if not isinstance(model, str):
            return _error(400, "you must provide a model parameter")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist or you do not have access.")
        texts = _inputs(body.get("input"))
        if texts is None:
            return _error(400, "'$.input' is invalid: a string, strings, or token arrays.")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(400, f"'{encoding}' is not one of ['float', 'base64']")
        data = []
        for index, words in enumerate(texts):
            vector = bag_of_words(words, self.dim)
            if encoding == "base64":
                encoded: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                encoded = [float(x) for x in vector]
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        if self.scramble:
            data.reverse()
        tokens = sum(len(words) for words in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _inputs(value: object) -> list[list[str]] | None:
    """Words per input, or ``None`` when the input is not valid (empty strings are not)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, int) for item in value):
        value = [value]
    texts: list[list[str]] = []
    for item in value:
        if isinstance(item, str) and item:
            texts.append(words_of(item))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            texts.append([f"token{t}" for t in item])
        else:
            return None
    return texts


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", None))
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)
