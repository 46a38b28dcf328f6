"""The tokenizer stored in a GGUF file, loaded without the weights (``vocab_only``)."""

from __future__ import annotations

import threading
from typing import Any

from ember.models.records import ModelRecord

__all__ = ["GgufTokenizer"]


class GgufTokenizer:
    """A :class:`~ember.providers.protocol.Tokenizer` over a GGUF model's own vocabulary.

    Loads only the vocabulary (a few MB, well under a second), so context packing counts the
    exact tokens the model will see without loading the model.
    """

    def __init__(self, record: ModelRecord) -> None:
        from llama_cpp import Llama

        self._name = record.name
        self._llama: Any = Llama(model_path=record.path, vocab_only=True, verbose=False)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def count(self, text: str) -> int:
        return len(self._tokens(text))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        raw = text.encode()
        spans: list[tuple[int, int]] = []
        position = 0
        tokens = self._tokens(text)
        with self._lock:
            pieces = [self._llama.detokenize([t]) for t in tokens]
        for piece in pieces:
            start = position
            position = min(len(raw), position + len(piece))
            spans.append(
                (
                    len(raw[:start].decode(errors="ignore")),
                    len(raw[:position].decode(errors="ignore")),
                )
            )
        return spans

    def _tokens(self, text: str) -> list[int]:
        if not text:
            return []
        with self._lock:
            return list(self._llama.tokenize(text.encode(), add_bos=False, special=False))
