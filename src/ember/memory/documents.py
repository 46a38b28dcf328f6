"""Documents as clients send them (JSON: text or base64), shared by the ingest route and the
``ingest`` job kind, and the request limits the route applies before any work
(:class:`DocumentLimits`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ember.errors import DocumentTooLarge, EmberError, ValidationFailed
from ember.memory.extract import BEIR_JSONL, SourceDocument, beir_documents

__all__ = ["DocumentIn", "DocumentLimits", "source_documents"]


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What one request may send: bytes per document (``memory.max_document_bytes``), bytes
    of compact JSON metadata per document (``memory.max_metadata_bytes``) and lines per BEIR
    corpus document (``memory.max_beir_lines``)."""

    max_document_bytes: int
    max_metadata_bytes: int
    max_beir_lines: int


class DocumentIn(BaseModel):
    """One document: exactly one of ``text`` and ``content_base64``."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=2048, description="Unique within the collection.")
    text: str | None = Field(None, description="The content as text.")
    content_base64: str | None = Field(None, description="The content as base64 (PDF, files).")
    media_type: str | None = Field(None, description="Default: from the source's suffix.")
    title: str | None = Field(None, max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_content(self) -> DocumentIn:
        if (self.text is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of text and content_base64")
        return self

    def source_document(self) -> SourceDocument:
        """The document for the ingestor.

        :raises ValidationFailed: ``content_base64`` is not base64, or ``text`` is not
            Unicode that UTF-8 can carry (a lone surrogate).
        """
        if self.text is not None:
            try:
                content = self.text.encode()
            except UnicodeEncodeError as exc:
                raise ValidationFailed(f"{self.source}: text is not valid Unicode") from exc
        else:
            try:
                content = base64.b64decode(self.content_base64 or "", validate=True)
            except ValueError as exc:  # not base64, or a character outside ASCII
                raise ValidationFailed(f"{self.source}: content_base64 is not base64") from exc
        return SourceDocument(self.source, content, self.media_type, self.title, self.metadata)


def _over(index: int, field: str, detail: str) -> ValidationFailed:
    path = f"body.documents.{index}.{field}"
    return ValidationFailed(
        f"{path}: {detail}", errors=[{"path": path, "message": detail, "type": "too_large"}]
    )


def _lines(content: bytes) -> int:
    return content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)


def _check(
    index: int, document: DocumentIn, source: SourceDocument, limits: DocumentLimits
) -> None:
    metadata = json.dumps(document.metadata, separators=(",", ":"), ensure_ascii=False)
    size = len(metadata.encode())
    if size > limits.max_metadata_bytes:
        raise _over(
            index,
            "metadata",
            f"{size} bytes of JSON, over memory.max_metadata_bytes ({limits.max_metadata_bytes})",
        )
    field = "text" if document.text is not None else "content_base64"
    if document.media_type == BEIR_JSONL:
        lines = _lines(source.content)
        if lines > limits.max_beir_lines:
            raise _over(
                index,
                field,
                f"a BEIR corpus of {lines} lines, over memory.max_beir_lines "
                f"({limits.max_beir_lines})",
            )
    elif len(source.content) > limits.max_document_bytes:
        raise DocumentTooLarge(
            f"body.documents.{index}.{field} ({source.source}): {len(source.content)} bytes, "
            f"over memory.max_document_bytes ({limits.max_document_bytes})",
            extra={"limit_bytes": limits.max_document_bytes},
        )


def source_documents(
    documents: Iterable[DocumentIn], limits: DocumentLimits | None = None
) -> list[SourceDocument | EmberError]:
    """What the ingestor takes: one item per document (a BEIR corpus expands to its
    documents); a document that cannot even be decoded is its error, in its place.

    With ``limits``, a document over one of them refuses the whole request before any work
    (a BEIR line over ``max_document_bytes`` stays that line's own failure, as in the
    ingestor).

    :raises ValidationFailed: a document's metadata, or a BEIR corpus's line count, is over
        its limit (``errors`` names the field).
    :raises DocumentTooLarge: a document's content is over ``max_document_bytes``.
    """
    items: list[SourceDocument | EmberError] = []
    for index, document in enumerate(documents):
        try:
            source = document.source_document()
        except EmberError as exc:
            items.append(exc)
            continue
        if limits is not None:
            _check(index, document, source, limits)
        if document.media_type == BEIR_JSONL:
            items.extend(beir_documents(source.content))
        else:
            items.append(source)
    return items
