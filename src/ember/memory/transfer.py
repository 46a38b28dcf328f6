"""Export a collection to portable JSON lines and import them into another ember.

An export is JSON lines: a header (format, version, collection, model id, dimension), then one
line per document, ordered by source, with its current version's text spans, metadata and
chunk vectors (base64 float32). Importing writes the same documents, chunks and vectors — no
re-embedding — and rebuilds the vector index, so searches return what they returned before.

:func:`export_lines` and :func:`import_lines` work on lines (the API streams them as
``application/x-ndjson``); :func:`export_collection` and :func:`import_collection` on a
gzip-compressed file of the same lines (``ember collections export`` and ``import``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ember.errors import BadRequest, DimensionMismatch, InvalidExportLine
from ember.memory.indexes import IndexManager
from ember.storage.protocol import CollectionRepository, VersionStore
from ember.storage.records import CollectionRecord, NewChunk, NewVersion

__all__ = ["FORMAT", "export_collection", "export_lines", "import_collection", "import_lines"]

FORMAT = "ember-collection"
VERSION = 1
_MAX_INT = 2**63 - 1
_MAX_DIM = 65536


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Collection(_Line):
    name: str
    description: str = ""
    embedding_model: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class _Header(_Line):
    format: Literal["ember-collection"]
    version: Literal[1]
    collection: _Collection
    model_id: str | None = None
    dim: int = Field(0, ge=0, le=_MAX_DIM)

    @model_validator(mode="after")
    def _dim_of_vectors(self) -> _Header:
        if self.model_id is not None and self.dim < 1:
            raise ValueError("a header with a model id needs the vectors' dim")
        return self


class _Chunk(_Line):
    text: str
    char_start: int = Field(ge=0, le=_MAX_INT)
    char_end: int = Field(ge=0, le=_MAX_INT)
    token_count: int = Field(ge=0, le=_MAX_INT)


class _Document(_Line):
    source: str
    title: str | None
    media_type: str
    content_hash: str
    size_bytes: int = Field(ge=0, le=_MAX_INT)
    metadata: dict[str, Any]
    chunks: list[_Chunk]
    vectors: list[str]


def export_lines(
    collections: CollectionRepository, store: VersionStore, indexes: IndexManager, name: str
) -> Iterator[str]:
    """The export of collection ``name``, one line at a time, each ending in a newline: the
    header, then each document's line. The collection is looked up now; documents are read
    from ``store`` as the lines are consumed.

    :raises CollectionNotFound: no such collection (before any line).
    """
    record = collections.get(name)
    live = indexes.current(record.id)
    model_id, dim = (live[0].model_id, live[0].dim) if live else (None, 0)
    return _export(store, record, model_id, dim)


def _export(
    store: VersionStore, record: CollectionRecord, model_id: str | None, dim: int
) -> Iterator[str]:
    header = {
        "format": FORMAT,
        "version": VERSION,
        "collection": {
            "name": record.name,
            "description": record.description,
            "embedding_model": record.embedding_model,
            "metadata": record.metadata,
        },
        "model_id": model_id,
        "dim": dim,
    }
    yield json.dumps(header) + "\n"
    if model_id is None:
        return
    for version, vectors in store.live_documents(record.id, model_id):
        line = asdict(version)
        line["vectors"] = [
            base64.b64encode(np.ascontiguousarray(v, np.float32).tobytes()).decode()
            for v in vectors
        ]
        yield json.dumps(line) + "\n"


def export_collection(
    collections: CollectionRepository,
    store: VersionStore,
    indexes: IndexManager,
    name: str,
    path: Path,
) -> int:
    """Write collection ``name`` to ``path`` as gzip-compressed :func:`export_lines`
    (atomically); returns the documents written.

    :raises CollectionNotFound: no such collection.
    """
    lines = export_lines(collections, store, indexes, name)
    partial = path.with_name(f".{path.name}.partial")
    written = 0
    try:
        with gzip.open(partial, "wt", encoding="utf-8") as out:
            for line in lines:
                out.write(line)
                written += 1
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return written - 1


def _at(source: str | None, number: int) -> str:
    return f"line {number}" if source is None else f"{source}:{number}"


def _invalid(source: str | None, number: int, what: str) -> InvalidExportLine:
    return InvalidExportLine(f"{_at(source, number)}: {what}", extra={"line": number})


def _numbered(lines: Iterable[str], source: str | None) -> Iterator[tuple[int, str]]:
    """``lines`` with their numbers, from 1.

    :raises InvalidExportLine: reading a line failed (a truncated or damaged file, text that
        is not UTF-8), naming that line.
    """
    number = 0
    try:
        for number, line in enumerate(lines, start=1):
            yield number, line
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise _invalid(
            source, number + 1, f"the export is truncated or damaged from this line on: {exc}"
        ) from exc


def _header(first: tuple[int, str] | None, source: str | None) -> _Header:
    if first is None:
        raise _invalid(source, 1, "empty: not an ember collection export")
    try:
        raw = json.loads(first[1])
    except ValueError as exc:
        raise _invalid(source, 1, "not an ember collection export") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _invalid(source, 1, "not an ember collection export")
    if raw.get("version") != VERSION:
        raise _invalid(source, 1, f"export version {raw.get('version')} is not supported")
    try:
        return _Header.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(source, 1, f"not the header of an ember export: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    """``exc`` in one line: a validation error's first failure, with where it is."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        return f"{place}: {first['msg']}" if place else str(first["msg"])
    return str(exc)


def _document(
    line: str, dim: int, where: str, number: int
) -> tuple[NewVersion, npt.NDArray[np.float32]]:
    try:
        row = _Document.model_validate_json(line.strip())
        vectors: npt.NDArray[np.float32] = np.stack(
            [np.frombuffer(base64.b64decode(v, validate=True), np.float32) for v in row.vectors]
        )
    except (ValidationError, ValueError, binascii.Error) as exc:
        message = f"{where}: not a document line of an ember export: {_reason(exc)}"
        raise InvalidExportLine(message, extra={"line": number}) from exc
    if vectors.shape[0] != len(row.chunks):
        raise InvalidExportLine(
            f"{where}: {len(row.chunks)} chunks but {vectors.shape[0]} vectors",
            extra={"line": number},
        )
    if vectors.shape[1] != dim:
        raise DimensionMismatch(
            f"{where}: vectors of {vectors.shape[1]} dims, header says {dim}",
            extra={"line": number},
        )
    chunks = [NewChunk(**chunk.model_dump()) for chunk in row.chunks]
    fields = row.model_dump(exclude={"chunks", "vectors"})
    return NewVersion(**fields, chunks=chunks), vectors


def import_lines(
    collections: CollectionRepository,
    store: VersionStore,
    indexes: IndexManager,
    lines: Iterable[str],
    name: str | None = None,
    *,
    source: str | None = None,
) -> tuple[str, int]:
    """Import the lines of an export (:func:`export_lines`) into a new collection (``name``,
    or the exported name). Blank lines are skipped. Errors name the line as ``line N``, or
    ``source:N`` when ``source`` (a file's name) is given.

    Returns the collection name and the number of documents imported.

    :raises InvalidExportLine: a line is not what an export holds there (``extra["line"]``):
        the header is not an export's of a version this ember reads, or a document line is
        not JSON, not a document, has vectors that do not match its chunks, or comes after a
        header without a model id; or the lines cannot be read from there on.
    :raises CollectionExists: the target collection exists already.
    :raises ValidationFailed: the collection name is not a valid name.
    :raises DimensionMismatch: a document's vectors do not have the header's dimension
        (``extra["line"]``).

    All or nothing: on any failure after the collection was created it is deleted again.
    """
    numbered = _numbered(lines, source)
    header = _header(next(numbered, None), source)
    meta = header.collection
    record = collections.create(
        name or meta.name,
        description=meta.description,
        embedding_model=meta.embedding_model,
        metadata=meta.metadata,
    )
    count = 0
    try:
        for number, line in numbered:
            if not line.strip():
                continue
            if header.model_id is None:
                raise _invalid(source, number, "a document line, but the header names no model")
            version, vectors = _document(line, header.dim, _at(source, number), number)
            store.write_version(record.id, version, vectors, header.model_id)
            count += 1
        if header.model_id is not None:
            indexes.rebuild(record.id, header.model_id, header.dim)
    except BaseException:
        collections.delete(record.name)
        raise
    return record.name, count


def import_collection(
    collections: CollectionRepository,
    store: VersionStore,
    indexes: IndexManager,
    path: Path,
    name: str | None = None,
) -> tuple[str, int]:
    """Import a file written by :func:`export_collection` into a new collection (``name``, or
    the exported name); see :func:`import_lines`, whose errors name ``path:N``.

    :raises BadRequest: the file cannot be read as gzip text at all.
    """
    try:
        handle = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed below
        first = handle.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise BadRequest(f"{path}: cannot be read as an ember collection export: {exc}") from exc
    with handle:
        return import_lines(
            collections,
            store,
            indexes,
            itertools.chain([first], handle),
            name,
            source=str(path),
        )
