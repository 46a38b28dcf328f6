"""ModelHost: one GGUF model loaded with llama.cpp, answering one call at a time.

The file is verified against its pinned digest before it is loaded; a mismatch raises
:class:`~ember.errors.ModelDigestMismatch` and nothing is loaded. Generation runs in the host's
single worker thread (llama.cpp contexts are not thread-safe), so calls queue in arrival order
and the event loop stays free; a stream hands each token to the loop as it is produced and
stops generating when its consumer stops reading.

A call that asks for a repeatable answer (``temperature`` 0, or a ``seed``) evaluates its whole
prompt afresh. Reusing the cached prefix of the previous prompt (llama.cpp's prompt cache)
evaluates only the rest, in batches of another shape, and the rounding differences that makes
were enough to change the greedy answer of the bundled model after a different prompt. Other
calls keep the cache: a chat that grows turn by turn pays only for its new tokens.

Nothing here imports Ray: the ``ModelHost`` actor is a shell around this class.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ember.chat import ChatMessage, Completion, Delta, GenerationOptions, Usage
from ember.config.models import ModelsConfig
from ember.errors import (
    ModelDigestMismatch,
    ProviderBadRequest,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.models.digest import file_digest
from ember.models.records import ModelRecord
from ember.observability.metrics import Metrics, NoMetrics

__all__ = ["DEFAULT_MAX_TOKENS", "ModelHost"]

DEFAULT_MAX_TOKENS = 512
"""Completion tokens a call without ``max_tokens`` may produce."""

_PROVIDER = "local"
_END = object()


def _llama_class() -> Callable[..., Any]:
    from llama_cpp import Llama

    return Llama


class ModelHost:
    """Hosts ``record``'s model. ``gpu`` offloads ``settings.gpu_layers`` layers to the GPU.

    ``llama_class`` builds the engine (``llama_cpp.Llama`` by default; tests may pass another
    with the same constructor and ``create_completion``/``create_chat_completion``/``tokenize``).
    Each call that generates observes ``ember_llm_queue_seconds`` in ``metrics``: the time
    from its first ``anext`` (its arrival) to the host's thread starting on it, labelled
    with the record's name.
    """

    def __init__(
        self,
        record: ModelRecord,
        settings: ModelsConfig,
        *,
        gpu: bool = False,
        llama_class: Callable[..., Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._record = record
        self._metrics: Metrics = metrics or NoMetrics()
        self._settings = settings
        self._gpu = gpu
        self._llama_class = llama_class
        self._llama: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-host")
        self._pending = 0
        self._closed = False

    @property
    def record(self) -> ModelRecord:
        return self._record

    @property
    def gpu(self) -> bool:
        return self._gpu

    def load(self) -> float:
        """Verify the file's digest and load it; returns the seconds it took.

        :raises ModelDigestMismatch: the file's sha256 is not the pinned digest.
        :raises ProviderUnavailable: the file is missing or llama.cpp cannot load it.
        """
        started = time.perf_counter()
        try:
            actual = file_digest(self._record.path)
        except OSError as exc:
            raise ProviderUnavailable(f"model file {self._record.path}: {exc}") from exc
        if actual != self._record.digest:
            raise ModelDigestMismatch(
                f"{self._record.name}: {self._record.path} has {actual}, "
                f"pinned {self._record.digest}"
            )
        factory = self._llama_class or _llama_class()
        try:
            self._llama = factory(
                model_path=self._record.path,
                n_ctx=min(self._settings.n_ctx, self._record.context_length or 1 << 30),
                n_threads=self._settings.n_threads,
                n_threads_batch=self._settings.n_threads,
                n_gpu_layers=self._settings.gpu_layers if self._gpu else 0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ProviderUnavailable(
                f"llama.cpp could not load {self._record.name}: {exc}"
            ) from exc
        return time.perf_counter() - started

    async def busy(self) -> int:
        return self._pending

    def tokenize(self, text: str) -> list[int]:
        """The model's tokens of ``text`` (no BOS, special tokens as text)."""
        return list(self._engine().tokenize(text.encode(), add_bos=False, special=False))

    async def complete(self, prompt: str, options: GenerationOptions) -> Completion:
        return await self._whole(self.stream(prompt, options))

    def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        engine = self._engine()
        kwargs = self._sampling(options)

        def chunks() -> Iterator[Any]:
            _forget_prompt_cache(engine, options)
            return iter(engine.create_completion(prompt, stream=True, **kwargs))

        return self._run(chunks, options, lambda c: c["choices"][0].get("text", ""), prompt)

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        return await self._whole(self.stream_chat(messages, options))

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        engine = self._engine()
        kwargs = self._sampling(options)
        if options.tools:
            kwargs["tools"] = options.tools
        wire = [m.to_openai() for m in messages]

        def chunks() -> Iterator[Any]:
            _forget_prompt_cache(engine, options)
            return iter(engine.create_chat_completion(messages=wire, stream=True, **kwargs))

        contents = "\n".join(m.content for m in messages)
        return self._run(
            chunks,
            options,
            lambda c: c["choices"][0].get("delta", {}).get("content") or "",
            contents,
        )

    async def close(self) -> None:
        """Free the model; later calls raise ProviderUnavailable."""
        self._closed = True
        engine, self._llama = self._llama, None
        await asyncio.get_running_loop().run_in_executor(self._executor, _close, engine)
        self._executor.shutdown(wait=False)

    def _engine(self) -> Any:
        if self._closed or self._llama is None:
            raise ProviderUnavailable(f"{self._record.name} is not loaded")
        return self._llama

    def _sampling(self, options: GenerationOptions) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": options.max_tokens or DEFAULT_MAX_TOKENS,
            "stop": list(dict.fromkeys([*options.stop, *self._record.stop])) or None,
        }
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
        if options.seed is not None:
            kwargs["seed"] = options.seed
        return kwargs

    async def _whole(self, deltas: AsyncIterator[Delta]) -> Completion:
        texts: list[str] = []
        last = Delta("")
        async for delta in deltas:
            texts.append(delta.text)
            last = delta
        return Completion(
            text="".join(texts),
            model=self._record.name,
            provider=_PROVIDER,
            finish_reason=last.finish_reason,
            usage=last.usage or Usage(),
        )

    async def _run(
        self,
        chunks: Callable[[], Iterator[Any]],
        options: GenerationOptions,
        text_of: Callable[[Any], str],
        prompt: str | None,
    ) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
        arrived = time.perf_counter()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            count = 0
            finish: str | None = None
            try:
                if stop.is_set():
                    return
                waited = time.perf_counter() - arrived
                self._metrics.observe("ember_llm_queue_seconds", waited, model=self._record.name)
                for chunk in chunks():
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    text = text_of(chunk)
                    if text:
                        count += 1
                        put(Delta(text))
                    if stop.is_set():
                        return
                    if deadline is not None and time.monotonic() > deadline:
                        put(ProviderTimeout(f"{self._record.name} passed {options.timeout_s} s"))
                        return
                prompt_tokens = len(self.tokenize(prompt)) if prompt is not None else 0
                usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=count)
                put(Delta("", finish_reason=finish or "stop", usage=usage))
            except ValueError as exc:
                put(ProviderBadRequest(f"{self._record.name}: {exc}"))
            except Exception as exc:  # the engine failing is the host being unavailable
                put(ProviderUnavailable(f"{self._record.name} failed: {exc}"))
            finally:
                put(_END)

        self._pending += 1
        future = loop.run_in_executor(self._executor, work)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()
            self._pending -= 1
            if not future.done():
                future.add_done_callback(lambda f: f.exception())


def _forget_prompt_cache(engine: Any, options: GenerationOptions) -> None:
    if options.temperature == 0 or options.seed is not None:
        engine.reset()


def _close(engine: Any) -> None:
    if engine is not None and hasattr(engine, "close"):
        engine.close()
