"""Where documents to ingest come from: a file, a directory (read recursively) or a JSONL corpus.

A BEIR ``.jsonl`` corpus counts one document per non-empty line; any other supported file is
one document whose source is its path relative to the directory given (its name for a single
file). :func:`split_parts` cuts the sources into :class:`SourcePart` pieces of about
``part_documents`` documents each (a JSONL file by byte ranges on line boundaries), so that
many workers can read them in parallel; :func:`read_part` reads one.

Symbolic links are never a way out of the directory given: every file is resolved, and one
whose real path is outside it (a link to a file elsewhere, or a link to a directory elsewhere)
is not read; it yields :class:`~ember.errors.PathNotAllowed` instead, checked again when the
part is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ember.errors import DocumentUnreadable, EmberError, PathNotAllowed, ValidationFailed
from ember.memory.extract import BEIR_JSONL, SourceDocument, beir_documents, media_type_for

__all__ = [
    "SourcePart",
    "count_documents",
    "escapes",
    "list_files",
    "read_documents",
    "read_part",
    "split_parts",
]


@dataclass(frozen=True, slots=True)
class SourcePart:
    """A whole file (``length`` -1), or ``length`` bytes of a JSONL file from ``offset``,
    whose first line is line ``first_line`` of the file. ``documents`` is how many it holds.
    ``root`` is the directory (or file) it was listed under: the file's real path must be
    inside it to be read (empty: not checked)."""

    path: str
    source: str
    offset: int = 0
    length: int = -1
    first_line: int = 1
    documents: int = 1
    root: str = ""


def escapes(path: Path, root: Path) -> bool:
    """Whether ``path``'s real path (every symbolic link followed) is outside ``root``'s."""
    return not path.resolve().is_relative_to(root.resolve())


def list_files(root: Path) -> list[Path]:
    """The supported files at ``root`` (itself, or under it, hidden names left out), sorted,
    and every symbolic link under it that leads outside it (reading one gives
    :class:`PathNotAllowed`; links to directories are never followed).

    :raises ValidationFailed: ``root`` does not exist.
    """
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValidationFailed(f"{root}: no such file or directory")
    return sorted(
        path
        for path in root.rglob("*")
        if not path.name.startswith(".")
        and (
            (path.is_symlink() and escapes(path, root))
            or (path.is_file() and media_type_for(path.name))
        )
    )


def _source(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if root.is_dir() else path.name


def read_documents(files: list[Path], root: Path) -> Iterator[SourceDocument | EmberError]:
    """Every document of ``files`` in order; a file that cannot be read yields its error."""
    for path in files:
        yield from read_part(SourcePart(str(path), _source(path, root), root=str(root)))


def count_documents(files: list[Path], root: Path | None = None) -> int:
    """How many documents :func:`read_documents` yields for ``files`` listed under ``root``
    (errors, and files that lead outside ``root``, count as one)."""
    total = 0
    for path in files:
        if media_type_for(path.name) == BEIR_JSONL and not (root and escapes(path, root)):
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
        whole = SourcePart(str(path), source, root=str(root))
        if media_type_for(path.name) != BEIR_JSONL or escapes(path, root):
            parts.append(whole)
            continue
        try:
            handle = path.open("rb")
        except OSError:
            parts.append(whole)
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
                        SourcePart(
                            str(path), source, start, offset - start, first, documents, str(root)
                        )
                    )
                    start, first, documents = offset, line_no, 0
            if documents:
                parts.append(
                    SourcePart(
                        str(path), source, start, offset - start, first, documents, str(root)
                    )
                )
    return parts


def read_part(part: SourcePart) -> list[SourceDocument | EmberError]:
    """The documents of one part; a file that cannot be read, or whose real path is outside
    the part's ``root``, gives its one error."""
    path = Path(part.path)
    real = path
    if part.root:
        if escapes(path, Path(part.root)):
            return [PathNotAllowed(f"{part.source}: leads outside the directory being ingested")]
        real = path.resolve()
    try:
        with real.open("rb") as handle:
            handle.seek(part.offset)
            data = handle.read() if part.length < 0 else handle.read(part.length)
    except OSError as exc:
        return [DocumentUnreadable(f"{part.source}: {exc.strerror or exc}")]
    if media_type_for(path.name) == BEIR_JSONL:
        return list(beir_documents(data, first_line=part.first_line))
    return [SourceDocument(part.source, data)]
