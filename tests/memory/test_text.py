"""Normalization, hashing and chunking with the real MiniLM tokenizer."""

from __future__ import annotations

import itertools

import pytest

from ember.memory.chunker import Chunker
from ember.memory.text import content_hash, normalize
from ember.providers.hf_tokenizer import HuggingFaceTokenizer


def test_normalize_collapses_layout_but_keeps_paragraphs() -> None:
    raw = "  Caf\u0065\u0301\tau   lait \r\n\r\n\r\n\r\nSecond\u00a0 para  \n"
    assert normalize(raw) == "Caf\u00e9 au lait\n\nSecond para"


def test_hash_is_stable_over_whitespace_and_key_order() -> None:
    a = content_hash("one  two\nthree", "T", {"a": 1, "b": {"x": 1, "y": 2}})
    b = content_hash(" one two three ", " T ", {"b": {"y": 2, "x": 1}, "a": 1})
    assert a == b
    assert a != content_hash("one two three", "T", {"a": 2, "b": {"x": 1, "y": 2}})
    assert a != content_hash("one two four", "T", {"a": 1, "b": {"x": 1, "y": 2}})
    assert a != content_hash("one two three", "Other", {"a": 1, "b": {"x": 1, "y": 2}})


@pytest.fixture(scope="module")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.bundled()


def test_short_text_is_one_chunk(tokenizer: HuggingFaceTokenizer) -> None:
    [chunk] = Chunker(tokenizer, 50, 10).split("A short note.")
    assert (chunk.text, chunk.char_start, chunk.char_end) == ("A short note.", 0, 13)
    assert chunk.token_count == tokenizer.count("A short note.")
    assert Chunker(tokenizer, 50, 10).split("   ") == []


def test_long_text_windows_overlap_and_map_back(tokenizer: HuggingFaceTokenizer) -> None:
    text = " ".join(f"word{i} is followed by unbelievably long tokenization" for i in range(60))
    chunker = Chunker(tokenizer, 40, 8)
    chunks = chunker.split(text)
    assert tokenizer.count(text) > 128
    assert len(chunks) > 3
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.token_count <= 40
        assert tokenizer.count(chunk.text) <= 40
        assert not chunk.text[0].isspace() and not chunk.text[-1].isspace()
    for previous, following in itertools.pairwise(chunks):
        assert following.char_start < previous.char_end
        assert following.char_start > previous.char_start
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)


def test_chunker_rejects_bad_settings(tokenizer: HuggingFaceTokenizer) -> None:
    with pytest.raises(ValueError, match="overlap"):
        Chunker(tokenizer, 40, 30)
