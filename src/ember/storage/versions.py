"""SQL adapter of :class:`~ember.storage.protocol.VersionStore`: documents and their versions.

Writing a version is one transaction that also writes its chunks and their embeddings and
retires the previous version's; reading back gives the live version of a source, the live
content hashes, and each document's live version whole (what an export writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ember.errors import DimensionMismatch
from ember.storage._rows import fetch_all
from ember.storage.chunks import chunk_metadata
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.records import LiveVersion, NewChunk, NewVersion, WrittenVersion
from ember.storage.tables import Chunk, Document, DocumentVersion, Embedding

__all__ = ["SqlVersionStore"]


class SqlVersionStore:
    """Documents and their versions in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def live_version(self, collection_id: str, source: str) -> LiveVersion | None:
        def work(session: Session) -> LiveVersion | None:
            row = session.execute(
                select(Document.id, Document.current_version, DocumentVersion.content_hash)
                .join(
                    DocumentVersion,
                    (DocumentVersion.document_id == Document.id)
                    & (DocumentVersion.version == Document.current_version),
                )
                .where(Document.collection_id == collection_id, Document.source == source)
            ).first()
            return LiveVersion(row[0], row[1], row[2]) if row else None

        return self._db.run(work)

    def live_hashes(self, collection_id: str) -> dict[str, str]:
        query = (
            select(Document.source, DocumentVersion.content_hash)
            .join(
                DocumentVersion,
                (DocumentVersion.document_id == Document.id)
                & (DocumentVersion.version == Document.current_version),
            )
            .where(Document.collection_id == collection_id)
        )
        return {str(row[0]): str(row[1]) for row in self._db.run(fetch_all(query))}

    def source_with_content(self, collection_id: str, content_hash: str) -> str | None:
        def work(session: Session) -> str | None:
            return session.scalar(
                select(Document.source)
                .join(DocumentVersion, DocumentVersion.document_id == Document.id)
                .where(
                    Document.collection_id == collection_id,
                    DocumentVersion.content_hash == content_hash,
                    DocumentVersion.version == Document.current_version,
                )
                .limit(1)
            )

        return self._db.run(work)

    def write_version(
        self,
        collection_id: str,
        version: NewVersion,
        vectors: npt.NDArray[np.float32],
        model_id: str,
    ) -> WrittenVersion:
        if vectors.ndim != 2 or vectors.shape[0] != len(version.chunks):
            raise DimensionMismatch(
                f"{len(version.chunks)} chunks but vectors of shape {vectors.shape}"
            )
        metadata = chunk_metadata(version)
        dim = int(vectors.shape[1])
        blobs = [np.ascontiguousarray(row, dtype=np.float32).tobytes() for row in vectors]

        def work(session: Session) -> WrittenVersion:
            document = session.scalars(
                select(Document)
                .where(Document.collection_id == collection_id, Document.source == version.source)
                .with_for_update()
            ).first()
            if document is None:
                document = Document(collection_id=collection_id, source=version.source)
                document.current_version = 0
                session.add(document)
                session.flush()
            retired: list[int] = []
            if document.current_version:
                retired = list(
                    session.scalars(
                        select(Chunk.id).where(
                            Chunk.document_id == document.id, Chunk.retired.is_(False)
                        )
                    )
                )
                session.execute(
                    update(Chunk)
                    .where(Chunk.document_id == document.id, Chunk.retired.is_(False))
                    .values(retired=True)
                )
                session.execute(
                    update(DocumentVersion)
                    .where(
                        DocumentVersion.document_id == document.id,
                        DocumentVersion.retired_at.is_(None),
                    )
                    .values(retired_at=utcnow())
                )
            number = document.current_version + 1
            row = DocumentVersion(
                document_id=document.id,
                version=number,
                content_hash=version.content_hash,
                size_bytes=version.size_bytes,
                meta=dict(version.metadata),
            )
            session.add(row)
            document.current_version = number
            document.title = version.title
            document.media_type = version.media_type
            document.meta = dict(version.metadata)
            session.flush()
            chunks = [
                Chunk(
                    version_id=row.id,
                    document_id=document.id,
                    collection_id=collection_id,
                    ordinal=ordinal,
                    title=version.title,
                    text=chunk.text,
                    content_hash=version.content_hash,
                    token_count=chunk.token_count,
                    char_start=chunk.char_start,
                    char_end=chunk.char_end,
                    meta=metadata,
                    retired=False,
                )
                for ordinal, chunk in enumerate(version.chunks)
            ]
            session.add_all(chunks)
            session.flush()
            session.add_all(
                Embedding(chunk_id=chunk.id, model_id=model_id, dim=dim, vector=blob)
                for chunk, blob in zip(chunks, blobs, strict=True)
            )
            return WrittenVersion(document.id, number, [c.id for c in chunks], retired)

        return self._db.run(work)

    def live_documents(
        self, collection_id: str, model_id: str
    ) -> Iterator[tuple[NewVersion, npt.NDArray[np.float32]]]:
        document_ids = self._db.run(
            lambda session: list(
                session.scalars(
                    select(Document.id)
                    .where(Document.collection_id == collection_id)
                    .order_by(Document.source)
                )
            )
        )
        for document_id in document_ids:
            found = self._db.run(
                partial(self._live_document, document_id=document_id, model_id=model_id)
            )
            if found is not None:
                yield found

    @staticmethod
    def _live_document(
        session: Session, document_id: str, model_id: str
    ) -> tuple[NewVersion, npt.NDArray[np.float32]] | None:
        document = session.get(Document, document_id)
        if document is None or not document.current_version:
            return None
        version = session.scalars(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document_id,
                DocumentVersion.version == document.current_version,
            )
        ).one()
        rows = list(
            session.execute(
                select(Chunk, Embedding.vector)
                .join(
                    Embedding, (Embedding.chunk_id == Chunk.id) & (Embedding.model_id == model_id)
                )
                .where(Chunk.version_id == version.id)
                .order_by(Chunk.ordinal)
            )
        )
        chunks = [
            NewChunk(chunk.text, chunk.char_start, chunk.char_end, chunk.token_count)
            for chunk, _ in rows
        ]
        vectors = (
            np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )
        return (
            NewVersion(
                source=document.source,
                title=document.title,
                media_type=document.media_type or "text/plain",
                content_hash=version.content_hash,
                size_bytes=version.size_bytes,
                metadata=dict(version.meta),
                chunks=chunks,
            ),
            vectors,
        )
