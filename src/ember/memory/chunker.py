"""Token-aware chunking with overlap, counted with the embedding model's own tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

from ember.providers.protocol import Tokenizer
from ember.storage.records import NewChunk

__all__ = ["Chunker"]


@dataclass(frozen=True)
class Chunker:
    """Splits text into windows of at most ``max_tokens`` tokens overlapping by ``overlap``.

    A window that would end inside a word is cut back to the last whitespace when that keeps
    at least half of it, and the next window starts at a word boundary inside the overlap.
    Chunk spans are character offsets into the text given.
    """

    tokenizer: Tokenizer
    max_tokens: int = 200
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or not 0 <= self.overlap < self.max_tokens // 2:
            raise ValueError("need max_tokens >= 8 and 0 <= overlap < max_tokens / 2")

    def split(self, text: str) -> list[NewChunk]:
        """The chunks of ``text`` in order; empty text gives no chunks."""
        spans = self.tokenizer.offsets(text)
        if not spans:
            return [NewChunk(text, 0, len(text), 0)] if text.strip() else []
        if len(spans) <= self.max_tokens:
            return [NewChunk(text, 0, len(text), len(spans))]
        chunks: list[NewChunk] = []
        first = 0
        while first < len(spans):
            last = min(first + self.max_tokens, len(spans))
            if last < len(spans):
                cut = last
                while cut > first + self.max_tokens // 2 and spans[cut][0] == spans[cut - 1][1]:
                    cut -= 1
                if cut > first + self.max_tokens // 2:
                    last = cut
            start = spans[first][0]
            end = spans[last - 1][1]
            chunks.append(NewChunk(text[start:end], start, end, last - first))
            if last == len(spans):
                break
            following = max(last - self.overlap, first + 1)
            while following < last and spans[following][0] == spans[following - 1][1]:
                following += 1
            first = following
        return chunks
