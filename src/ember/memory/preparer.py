"""Preparing a document for writing: extract → normalize → hash → skip if known → chunk.

No database here: whether a document needs writing is the injected :data:`Known` check, so
the same preparer runs in the single-process ingest (checking the database) and in bulk
pipeline workers (checking a snapshot of the collection taken when the run started).
Documents are serialized to JSON-ready dicts to cross process boundaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ember.errors import DocumentUnreadable, EmberError
from ember.memory.chunker import Chunker
from ember.memory.extract import SourceDocument, extract
from ember.memory.text import content_hash
from ember.storage.records import NewChunk, NewVersion

__all__ = [
    "DocumentOutcome",
    "DocumentPreparer",
    "Known",
    "Status",
    "embedding_text",
    "known_from_snapshot",
    "version_from_dict",
    "version_to_dict",
]

log = logging.getLogger(__name__)

Status = Literal["created", "updated", "unchanged", "duplicate", "failed"]


@dataclass(frozen=True)
class DocumentOutcome:
    """What happened to one document."""

    source: str
    status: Status
    document_id: str | None = None
    version: int | None = None
    chunks: int = 0
    duplicate_of: str | None = None
    error_code: str | None = None
    error: str | None = None


Known = Callable[[str, str], DocumentOutcome | None]
"""``known(source, content_hash)``: the outcome of a document that needs no writing
(``unchanged`` or ``duplicate``), or ``None`` to write it."""


def embedding_text(title: str | None, text: str) -> str:
    """What is embedded for a chunk: its document's title, a newline, then its text."""
    return f"{title}\n{text}" if title else text


def known_from_snapshot(live: Mapping[str, str]) -> Known:
    """A :data:`Known` check over ``live`` (source → content hash of its current version):
    the same content under the same source is ``unchanged``, under another ``duplicate``."""
    owners = {digest: source for source, digest in live.items()}

    def known(source: str, digest: str) -> DocumentOutcome | None:
        if live.get(source) == digest:
            return DocumentOutcome(source, "unchanged")
        twin = owners.get(digest)
        if twin is not None and twin != source:
            return DocumentOutcome(source, "duplicate", duplicate_of=twin)
        return None

    return known


def version_to_dict(version: NewVersion) -> dict[str, Any]:
    """``version`` as JSON-ready data (see :func:`version_from_dict`)."""
    return asdict(version)


def version_from_dict(data: Mapping[str, Any]) -> NewVersion:
    """The :class:`NewVersion` :func:`version_to_dict` gave."""
    return NewVersion(
        source=data["source"],
        title=data["title"],
        media_type=data["media_type"],
        content_hash=data["content_hash"],
        size_bytes=int(data["size_bytes"]),
        metadata=dict(data["metadata"]),
        chunks=[NewChunk(**chunk) for chunk in data["chunks"]],
    )


class DocumentPreparer:
    """Turns a :class:`SourceDocument` into a chunked :class:`NewVersion`, or its outcome."""

    def __init__(self, chunker: Chunker, max_document_bytes: int) -> None:
        self._chunker = chunker
        self._max_bytes = max_document_bytes

    def prepare(
        self, item: SourceDocument | EmberError, known: Known
    ) -> NewVersion | DocumentOutcome:
        """Extract, normalize and hash ``item``; unless ``known`` says it needs no writing,
        chunk it. Never raises: a bad document comes back as its ``failed`` outcome."""
        if isinstance(item, EmberError):
            return DocumentOutcome("", "failed", error_code=item.code, error=item.detail)
        try:
            extracted = extract(item, self._max_bytes)
        except EmberError as exc:
            return DocumentOutcome(item.source, "failed", error_code=exc.code, error=exc.detail)
        except Exception as exc:
            log.exception("extraction failed", extra={"source": item.source})
            unreadable = DocumentUnreadable(f"{type(exc).__name__}: {exc}")
            return DocumentOutcome(
                item.source, "failed", error_code=unreadable.code, error=unreadable.detail
            )
        digest = content_hash(extracted.text, extracted.title, extracted.metadata)
        outcome = known(item.source, digest)
        if outcome is not None:
            return outcome
        return NewVersion(
            source=item.source,
            title=extracted.title,
            media_type=extracted.media_type,
            content_hash=digest,
            size_bytes=extracted.size_bytes,
            metadata=extracted.metadata,
            chunks=self._chunker.split(extracted.text),
        )
