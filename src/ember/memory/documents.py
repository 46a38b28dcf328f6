"""Documents as clients send them (JSON: text or base64), shared by the ingest route and the
``ingest`` job kind."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ember.errors import EmberError, ValidationFailed
from ember.memory.extract import BEIR_JSONL, SourceDocument, beir_documents

__all__ = ["DocumentIn", "source_documents"]


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

        :raises ValidationFailed: ``content_base64`` is not base64.
        """
        if self.text is not None:
            content = self.text.encode()
        else:
            try:
                content = base64.b64decode(self.content_base64 or "", validate=True)
            except binascii.Error as exc:
                raise ValidationFailed(f"{self.source}: content_base64 is not base64") from exc
        return SourceDocument(self.source, content, self.media_type, self.title, self.metadata)


def source_documents(documents: Iterable[DocumentIn]) -> list[SourceDocument | EmberError]:
    """What the ingestor takes: one item per document (a BEIR corpus expands to its
    documents); a document that cannot even be decoded is its error, in its place."""
    items: list[SourceDocument | EmberError] = []
    for document in documents:
        try:
            source = document.source_document()
        except EmberError as exc:
            items.append(exc)
            continue
        if document.media_type == BEIR_JSONL:
            items.extend(beir_documents(source.content))
        else:
            items.append(source)
    return items
