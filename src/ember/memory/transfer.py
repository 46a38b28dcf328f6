"""Export a collection to a portable file and import it into another ember.

The file is gzip-compressed JSON lines: a header (format, version, collection, model id,
dimension), then one line per document with its current version's text spans, metadata and
chunk vectors (base64 float32). Importing writes the same documents, chunks and vectors — no
re-embedding — and rebuilds the vector index, so searches return what they returned before.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np

from ember.errors import BadRequest, Conflict, DimensionMismatch
from ember.memory.indexes import IndexManager
from ember.storage.protocol import CollectionRepository, VersionStore
from ember.storage.records import NewChunk, NewVersion

__all__ = ["FORMAT", "export_collection", "import_collection"]

FORMAT = "ember-collection"
VERSION = 1


def export_collection(
    collections: CollectionRepository,
    store: VersionStore,
    indexes: IndexManager,
    name: str,
    path: Path,
) -> int:
    """Write collection ``name`` to ``path`` (atomically); returns the documents written.

    :raises CollectionNotFound: no such collection.
    """
    record = collections.get(name)
    live = indexes.current(record.id)
    model_id, dim = (live[0].model_id, live[0].dim) if live else (None, 0)
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    try:
        with gzip.open(partial, "wt", encoding="utf-8") as out:
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
            out.write(json.dumps(header) + "\n")
            if model_id is not None:
                for version, vectors in store.live_documents(record.id, model_id):
                    line = asdict(version)
                    line["vectors"] = [
                        base64.b64encode(np.ascontiguousarray(v, np.float32).tobytes()).decode()
                        for v in vectors
                    ]
                    out.write(json.dumps(line) + "\n")
                    count += 1
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _header(line: str, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise BadRequest(f"{path}: not an ember collection export") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadRequest(f"{path}: not an ember collection export")
    if header.get("version") != VERSION:
        raise BadRequest(f"{path}: export version {header.get('version')} is not supported")
    return header


def _lines(handle: IO[str], path: Path) -> Iterator[tuple[int, str]]:
    """The document lines of an opened export with their numbers (the header is line 1).

    :raises BadRequest: the file ends early (truncated) or is damaged, naming the line.
    """
    number = 1
    try:
        for number, line in enumerate(handle, start=2):
            yield number, line
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"{path}:{number + 1}: the file is truncated or damaged from this line on: {exc}"
        ) from exc


def _write_line(
    store: VersionStore, collection_id: str, line: str, model_id: str, dim: int, where: str
) -> None:
    try:
        row = json.loads(line)
        vectors = np.stack(
            [np.frombuffer(base64.b64decode(v), dtype=np.float32) for v in row.pop("vectors")]
        )
        chunks = [NewChunk(**chunk) for chunk in row.pop("chunks")]
        version = NewVersion(**row, chunks=chunks)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise BadRequest(f"{where}: not a document line of an ember export: {exc}") from exc
    if vectors.shape[1] != dim:
        raise DimensionMismatch(f"{where}: vectors of {vectors.shape[1]} dims, header says {dim}")
    store.write_version(collection_id, version, vectors, model_id)


def import_collection(
    collections: CollectionRepository,
    store: VersionStore,
    indexes: IndexManager,
    path: Path,
    name: str | None = None,
) -> tuple[str, int]:
    """Import an export into a new collection (``name``, or the exported name).

    Returns the collection name and the number of documents imported.

    :raises BadRequest: the file is not an export this ember reads.
    :raises CollectionExists: the target collection exists already.
    :raises DimensionMismatch: a document's vectors do not have the header's dimension.

    All or nothing: on any failure the new collection is deleted again.
    """
    try:
        handle = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 - closed below
        first = handle.readline()
    except (OSError, EOFError) as exc:
        raise BadRequest(f"{path}: cannot be read as an ember collection export: {exc}") from exc
    with handle:
        header = _header(first, path)
        meta = header["collection"]
        record = collections.create(
            name or meta["name"],
            description=meta.get("description", ""),
            embedding_model=meta.get("embedding_model"),
            metadata=meta.get("metadata") or {},
        )
        model_id, dim = header.get("model_id"), int(header.get("dim") or 0)
        count = 0
        try:
            for number, line in _lines(handle, path):
                if model_id is None:
                    raise Conflict(f"{path}: documents without a model id")
                _write_line(store, record.id, line, model_id, dim, f"{path}:{number}")
                count += 1
            if model_id is not None:
                indexes.rebuild(record.id, model_id, dim)
        except BaseException:
            collections.delete(record.name)
            raise
    return record.name, count
