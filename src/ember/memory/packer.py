"""Context packing: the best chunks that fit a token budget, with attribution.

Hits are taken in rank order. A hit whose text nearly repeats one already taken (Jaccard
similarity of word 3-shingles at or above ``duplicate_threshold``) is dropped as
``near_duplicate``; one that does not fit the remaining budget is dropped as ``over_budget``
(smaller hits further down may still fit). Each packed chunk is rendered as a numbered block
``[n] source (vV, chars a-b)`` followed by its text, so an answer can cite ``[n]``. Tokens
are counted with the target model's tokenizer, and the packed text is counted again as a
whole: ``tokens_used`` is exact and never exceeds the budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ember.memory.retrieval import SearchHit
from ember.providers.protocol import Tokenizer

__all__ = ["ContextPack", "ContextPacker", "DroppedChunk", "PackedChunk"]

_WORDS = re.compile(r"\w+")
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PackedChunk:
    """A chunk in the pack, where it came from and its ``text`` (as the pack holds it)."""

    citation: int
    chunk_id: int
    document_id: str
    source: str
    version: int
    char_start: int
    char_end: int
    tokens: int
    score: float
    text: str = ""


@dataclass(frozen=True)
class DroppedChunk:
    """A hit left out, and why."""

    chunk_id: int
    source: str
    reason: Literal["near_duplicate", "over_budget"]
    tokens: int
    duplicate_of: int | None = None


@dataclass
class ContextPack:
    """The packed context and its report."""

    text: str
    budget: int
    tokens_used: int
    tokenizer: str
    chunks: list[PackedChunk] = field(default_factory=list)
    dropped: list[DroppedChunk] = field(default_factory=list)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    if len(words) < 3:
        return {tuple(words)}
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


class ContextPacker:
    """Packs search hits under a token budget."""

    def __init__(self, tokenizer: Tokenizer, duplicate_threshold: float = 0.8) -> None:
        self._tokenizer = tokenizer
        self._threshold = duplicate_threshold

    @property
    def tokenizer(self) -> Tokenizer:
        """What tokens are counted with."""
        return self._tokenizer

    def pack(self, hits: Sequence[SearchHit], budget: int) -> ContextPack:
        """Pack ``hits`` (best first) into at most ``budget`` tokens.

        :raises ValueError: ``budget`` is not positive.
        """
        if budget <= 0:
            raise ValueError("budget must be positive")
        pack = ContextPack(text="", budget=budget, tokens_used=0, tokenizer=self._tokenizer.name)
        blocks: list[str] = []
        taken: list[tuple[int, set[tuple[str, ...]]]] = []
        separator_tokens = self._tokenizer.count(SEPARATOR)
        used = 0
        for hit in hits:
            chunk = hit.chunk
            shingles = _shingles(chunk.text)
            twin = next(
                (
                    cid
                    for cid, other in taken
                    if len(shingles & other) / max(1, len(shingles | other)) >= self._threshold
                ),
                None,
            )
            citation = len(blocks) + 1
            block = (
                f"[{citation}] {chunk.source} (v{chunk.version}, chars "
                f"{chunk.char_start}-{chunk.char_end})\n{chunk.text}"
            )
            tokens = self._tokenizer.count(block)
            if twin is not None:
                pack.dropped.append(
                    DroppedChunk(chunk.id, chunk.source, "near_duplicate", tokens, twin)
                )
                continue
            extra = tokens + (separator_tokens if blocks else 0)
            if used + extra > budget:
                pack.dropped.append(DroppedChunk(chunk.id, chunk.source, "over_budget", tokens))
                continue
            candidate = SEPARATOR.join([*blocks, block])
            exact = self._tokenizer.count(candidate)
            if exact > budget:
                pack.dropped.append(DroppedChunk(chunk.id, chunk.source, "over_budget", tokens))
                continue
            blocks.append(block)
            used = exact
            taken.append((chunk.id, shingles))
            pack.chunks.append(
                PackedChunk(
                    citation=citation,
                    chunk_id=chunk.id,
                    document_id=chunk.document_id,
                    source=chunk.source,
                    version=chunk.version,
                    char_start=chunk.char_start,
                    char_end=chunk.char_end,
                    tokens=tokens,
                    score=hit.score,
                    text=chunk.text,
                )
            )
        pack.text = SEPARATOR.join(blocks)
        pack.tokens_used = used
        return pack
