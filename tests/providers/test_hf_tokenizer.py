"""The Hugging Face tokenizer: exact counts past the file's truncation, offsets into the text."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from tokenizers import Tokenizer as RawTokenizer

from ember.providers.hf_tokenizer import MINILM_ID, HuggingFaceTokenizer, minilm_path

PASSAGE = (
    "Alterations of the architecture of cerebral white matter in the developing human brain can "
    "affect cortical development and result in functional disabilities. A line scan diffusion-"
    "weighted magnetic resonance imaging sequence with diffusion tensor analysis was applied to "
    "measure the apparent diffusion coefficient, to calculate relative anisotropy, and to "
    "delineate three-dimensional fiber architecture in cerebral white matter in preterm infants. "
) * 2


@pytest.fixture(scope="module")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.bundled()


def spans(tokenizer: HuggingFaceTokenizer, text: str) -> list[str]:
    return [text[start:end] for start, end in tokenizer.offsets(text)]


def test_bundled_tokenizer_is_named_after_the_model(tokenizer: HuggingFaceTokenizer) -> None:
    assert tokenizer.name == MINILM_ID


def test_the_file_itself_truncates_at_128() -> None:
    raw = RawTokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    assert len(raw.encode("word " * 300).ids) == 128


def test_counts_past_128_tokens_are_not_truncated(tokenizer: HuggingFaceTokenizer) -> None:
    assert tokenizer.count("word " * 300) == 300
    assert tokenizer.count(PASSAGE) > 128
    assert tokenizer.count(PASSAGE) == len(tokenizer.offsets(PASSAGE))
    assert tokenizer.count(PASSAGE * 10) == 10 * tokenizer.count(PASSAGE)


def test_counts_leave_out_special_tokens(tokenizer: HuggingFaceTokenizer) -> None:
    assert tokenizer.count("hello") == 1
    assert tokenizer.count("Hello, world!") == 4
    assert tokenizer.count("") == 0
    assert tokenizer.count(" \t\n ") == 0
    assert tokenizer.offsets("") == []


def test_offsets_are_spans_of_the_original_text(tokenizer: HuggingFaceTokenizer) -> None:
    assert tokenizer.offsets("Hello, world!") == [(0, 5), (5, 6), (7, 12), (12, 13)]
    assert spans(tokenizer, "don't stop-believing") == [
        "don", "'", "t", "stop", "-", "believing"
    ]  # fmt: skip


def test_offsets_skip_whitespace(tokenizer: HuggingFaceTokenizer) -> None:
    text = "  \tHello\n\n   world  \r\n"
    assert spans(tokenizer, text) == ["Hello", "world"]
    assert tokenizer.offsets(text) == [(3, 8), (13, 18)]


def test_offsets_of_unicode_are_code_point_spans(tokenizer: HuggingFaceTokenizer) -> None:
    assert spans(tokenizer, "Café naïve RÉSUMÉ") == ["Café", "naïve", "RÉSUMÉ"]
    assert spans(tokenizer, "😀 ok 🎉 東京") == ["😀", "ok", "🎉", "東", "京"]
    assert tokenizer.offsets("😀 ok") == [(0, 1), (2, 4)]


def test_offsets_split_words_into_pieces_within_the_word(tokenizer: HuggingFaceTokenizer) -> None:
    pieces = spans(tokenizer, "anisotropy")
    assert len(pieces) > 1
    assert "".join(pieces) == "anisotropy"


def test_dropped_characters_belong_to_no_span(tokenizer: HuggingFaceTokenizer) -> None:
    text = "cafe\u0301 a\u200bb x\x00y"
    assert spans(tokenizer, text) == ["cafe", "a\u200bb", "x", "y"]
    covered = {i for start, end in tokenizer.offsets(text) for i in range(start, end)}
    assert text.index("\u0301") not in covered
    assert text.index("\x00") not in covered


@pytest.mark.parametrize(
    "text",
    [
        PASSAGE,
        "Crème brûlée 🎉ok 東京タワー\u00a0nbsp ﬁne",
        "tabs\tand\nnewlines\r\nmixed  ",
        "x" * 500,
    ],
)
def test_offsets_are_ordered_and_inside_the_text(
    tokenizer: HuggingFaceTokenizer, text: str
) -> None:
    offsets = tokenizer.offsets(text)
    assert len(offsets) == tokenizer.count(text)
    assert all(0 <= start < end <= len(text) for start, end in offsets)
    assert all(a[1] <= b[0] for a, b in pairwise(offsets))
    assert all(not text[start:end].isspace() for start, end in offsets)


def test_from_tokenizer_copies_and_leaves_the_original_alone() -> None:
    raw = RawTokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    wrapped = HuggingFaceTokenizer.from_tokenizer(raw, "copy")
    assert wrapped.name == "copy"
    assert wrapped.count("word " * 300) == 300
    assert raw.truncation is not None and raw.truncation["max_length"] == 128


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HuggingFaceTokenizer(tmp_path / "tokenizer.json", "missing")


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer"):
        HuggingFaceTokenizer(path, "broken")


def test_importing_the_package_loads_neither_torch_nor_openai() -> None:
    code = (
        "import sys, ember.providers as p; "
        "heavy = ('torch', 'sentence_transformers', 'openai'); "
        "print([m for m in heavy if m in sys.modules]); "
        "p.HuggingFaceTokenizer.bundled(); "
        "print([m for m in heavy if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "[]"]
