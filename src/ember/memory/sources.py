"""Where documents to ingest come from: a file, a directory (read recursively) or a JSONL corpus.

A BEIR ``.jsonl`` corpus counts one document per non-empty line; any other supported file is
one document whose source is its path relative to the directory given (its name for a single
file). :func:`split_parts` cuts the sources into :class:`SourcePart` pieces of about
``part_documents`` documents each (a JSONL file by byte ranges on line boundaries), so that
many workers can read them in parallel; :func:`read_part` reads one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ember.errors import DocumentUnreadable, EmberError, ValidationFailed
from ember.memory.extract import BEIR_JSONL, SourceDocument, beir_documents, media_type_for

__all__ = [
    "SourcePart",
    "count_documents",
    "list_files",
    "read_documents",
    "read_part",
    "split_parts",
]


@dataclass(frozen=True, slots=True)
class SourcePart:
    """A whole file (``length`` -1), or ``length`` bytes of a JSONL file from ``offset``,
    whose first line is line ``first_line`` of the file. ``documents`` is how many it holds."""

    path: str
    source: str
    offset: int = 0
    length: int = -1
    first_line: int = 1
    documents: int = 1


def list_files(root: Path) -> list[Path]:
    """The supported files at ``root`` (itself, or under it, hidden names left out), sorted.

    :raises ValidationFailed: ``root`` does not exist.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValidationFailed(f"{root}: no such file or directory")
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".") and media_type_for(path.name)
    )


def _source(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if root.is_dir() else path.name


def read_documents(files: list[Path], root: Path) -> Iterator[SourceDocument | EmberError]:
    """Every document of ``files`` in order; a file that cannot be read yields its error."""
    for path in files:
        yield from read_part(SourcePart(str(path), _source(path, root)))


def count_documents(files: list[Path]) -> int:
    """How many documents :func:`read_documents` yields for ``files`` (errors count as one)."""
    total = 0
    for path in files:
        if media_type_for(path.name) == BEIR_JSONL:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            total += 1
    return total


def split_parts(files: list[Path], root: Path, part_documents: int = 256) -> list[SourcePart]:
    """``files`` as parts of at most ``part_documents`` documents, in reading order."""
    parts: list[SourcePart] = []
    for path in files:
        source = _source(path, root)
        if media_type_for(path.name) != BEIR_JSONL:
            parts.append(SourcePart(str(path), source))
            continue
        try:
            handle = path.open("rb")
        except OSError:
            parts.append(SourcePart(str(path), source))
            continue
        with handle:
            start = offset = 0
            first = line_no = 1
            documents = 0
            for line in handle:
                if line.strip():
                    documents += 1
                offset += len(line)
                line_no += 1
                if documents == part_documents:
                    parts.append(
                        SourcePart(str(path), source, start, offset - start, first, documents)
                    )
                    start, first, documents = offset, line_no, 0
            if documents:
                parts.append(SourcePart(str(path), source, start, offset - start, first, documents))
    return parts


def read_part(part: SourcePart) -> list[SourceDocument | EmberError]:
    """The documents of one part; a file that cannot be read gives its one error."""
    path = Path(part.path)
    try:
        with path.open("rb") as handle:
            handle.seek(part.offset)
            data = handle.read() if part.length < 0 else handle.read(part.length)
    except OSError as exc:
        return [DocumentUnreadable(f"{part.source}: {exc.strerror or exc}")]
    if media_type_for(path.name) == BEIR_JSONL:
        return list(beir_documents(data, first_line=part.first_line))
    return [SourceDocument(part.source, data)]
