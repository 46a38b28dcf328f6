"""ModelHost's queue time: a call that waits for the one before it to finish generating is
observed waiting that long (a fake engine, so the wait is the test's to hold)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ember.chat import GenerationOptions
from ember.config.models import ModelsConfig
from ember.models import ModelHost, ModelRecord
from ember.models.digest import file_digest
from ember.observability.metrics import PrometheusMetrics
from ember.testing.metrics import sample

HOLD_S = 0.2


class HeldEngine:
    """Answers two words; the first call holds the host's thread until ``release`` is set."""

    def __init__(self, **settings: Any) -> None:
        self.release = threading.Event()
        self.calls = 0

    def create_completion(self, prompt: str, **settings: Any) -> Iterator[dict[str, Any]]:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(5)
        for text in ("Hello", " there"):
            yield {"choices": [{"text": text, "finish_reason": None}]}
        yield {"choices": [{"text": "", "finish_reason": "stop"}]}

    def tokenize(self, text: bytes, **settings: Any) -> list[int]:
        return list(range(len(text.split())))


async def test_a_queued_call_observes_its_wait_for_the_host(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"not really a model")
    record = ModelRecord("fake", str(path), file_digest(str(path)), path.stat().st_size)
    metrics = PrometheusMetrics()
    host = ModelHost(record, ModelsConfig(), llama_class=HeldEngine, metrics=metrics)
    host.load()
    engine: HeldEngine = host._llama
    options = GenerationOptions(max_tokens=4)
    try:
        first = asyncio.create_task(host.complete("a b", options))
        second = asyncio.create_task(host.complete("c d", options))
        await asyncio.sleep(HOLD_S)
        engine.release.set()
        answers = await asyncio.gather(first, second)
    finally:
        await host.close()
    assert [a.text for a in answers] == ["Hello there", "Hello there"]
    text = metrics.render().decode()
    assert sample(text, "ember_llm_queue_seconds_count", {"model": "fake"}) == 2
    waited = sample(text, "ember_llm_queue_seconds_sum", {"model": "fake"})
    assert waited is not None and HOLD_S * 0.9 <= waited < 5
