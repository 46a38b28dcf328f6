"""The preparer's pieces the bulk pipeline relies on: snapshot checks and serialization."""

from __future__ import annotations

import json

from ember.memory.chunker import Chunker
from ember.memory.extract import SourceDocument
from ember.memory.preparer import (
    DocumentOutcome,
    DocumentPreparer,
    known_from_snapshot,
    version_from_dict,
    version_to_dict,
)
from ember.providers.hf_tokenizer import HuggingFaceTokenizer


def _preparer() -> DocumentPreparer:
    return DocumentPreparer(Chunker(HuggingFaceTokenizer.bundled(), 16, 4), 1 << 20)


def test_the_snapshot_skips_known_content_and_names_the_twin() -> None:
    preparer = _preparer()
    text = b"Glaciers carve valleys as the ice slowly flows downhill over many years."
    fresh = preparer.prepare(SourceDocument("ice.txt", text), known_from_snapshot({}))
    assert not isinstance(fresh, DocumentOutcome) and fresh.chunks
    snapshot = {"ice.txt": fresh.content_hash}
    same = preparer.prepare(SourceDocument("ice.txt", text), known_from_snapshot(snapshot))
    twin = preparer.prepare(SourceDocument("copy.txt", text), known_from_snapshot(snapshot))
    assert same == DocumentOutcome("ice.txt", "unchanged")
    assert twin == DocumentOutcome("copy.txt", "duplicate", duplicate_of="ice.txt")


def test_a_version_survives_json() -> None:
    version = _preparer().prepare(
        SourceDocument("a.md", b"# Title\n\nSome words here.", metadata={"year": 2020}),
        known_from_snapshot({}),
    )
    assert not isinstance(version, DocumentOutcome)
    assert version_from_dict(json.loads(json.dumps(version_to_dict(version)))) == version


def test_a_bad_document_is_its_failed_outcome() -> None:
    outcome = _preparer().prepare(SourceDocument("x.bin", b"\x00\x01\x02"), known_from_snapshot({}))
    assert isinstance(outcome, DocumentOutcome) and outcome.status == "failed"
    assert outcome.error_code == "binary_document"
