"""Turn raw bytes into text and metadata: plain text, Markdown, HTML, PDF and BEIR JSONL.

:func:`media_type_for` picks the format from an explicit media type or the file name;
:func:`extract` returns an :class:`Extracted` or raises a :class:`~ember.errors.DocumentRejected`
subclass with a stable code (empty, binary, unsupported, too large). :func:`beir_documents`
splits a BEIR-style ``corpus.jsonl`` into one document per line.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ember.errors import (
    BinaryDocument,
    DocumentRejected,
    DocumentTooLarge,
    DocumentUnreadable,
    EmptyDocument,
    UnsupportedMediaType,
)
from ember.memory.text import normalize

__all__ = [
    "BEIR_JSONL",
    "SUPPORTED_MEDIA_TYPES",
    "Extracted",
    "SourceDocument",
    "beir_documents",
    "extract",
    "media_type_for",
]

BEIR_JSONL = "application/x-beir+jsonl"
SUPPORTED_MEDIA_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf", BEIR_JSONL)
_SUFFIXES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".jsonl": BEIR_JSONL,
}
_ALIASES = {"text/x-markdown": "text/markdown", "application/xhtml+xml": "text/html"}


@dataclass(frozen=True)
class SourceDocument:
    """One document offered for ingest: where it came from and its raw content."""

    source: str
    content: bytes
    media_type: str | None = None
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extracted:
    """Normalized text with the metadata found in or around it."""

    text: str
    title: str | None
    media_type: str
    size_bytes: int
    metadata: dict[str, Any]


def media_type_for(source: str, declared: str | None = None) -> str | None:
    """The supported media type of ``source``: the declared one if given, else by suffix;
    ``None`` when the suffix is unknown (the content decides, see :func:`extract`)."""
    if declared:
        base = declared.split(";")[0].strip().lower()
        return _ALIASES.get(base, base)
    return _SUFFIXES.get(PurePath(source.split("#")[0]).suffix.lower())


_CP1252 = "".join(bytes([byte]).decode("cp1252", "ignore") or chr(byte) for byte in range(256))
"""Windows-1252 as a decoding table; its five unassigned bytes read as Latin-1 does."""
_CONTROLS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f]")
"""Control characters that text does not hold (tab, line ends and form feeds aside)."""
_MAX_CONTROLS = 0.05


def _decode(data: bytes) -> str:
    """``data`` as text: UTF-16 after its byte-order mark, else UTF-8 (a BOM dropped), else
    Windows-1252 (the superset of Latin-1 that legacy editors write; its five unassigned
    bytes read as Latin-1).

    :raises BinaryDocument: NUL bytes (outside UTF-16), or not UTF-8 and more than 5 % control
        characters as Windows-1252: binary content, not text.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise BinaryDocument("the content contains NUL bytes: not text")
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8-sig")
    text, _ = codecs.charmap_decode(data, "strict", _CP1252)
    if len(_CONTROLS.findall(text)) > _MAX_CONTROLS * len(text):
        raise BinaryDocument(
            "the content is not UTF-8, and read as Windows-1252 (Latin-1) more than 5 % of it "
            "is control characters: not text"
        )
    return text


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None


def _html(data: bytes) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if not title and (heading := soup.find("h1")):
        title = heading.get_text(" ", strip=True)
    if soup.title:
        soup.title.decompose()
    return soup.get_text("\n"), title or None


def _pdf(data: bytes) -> tuple[str, str | None, dict[str, Any]]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentRejected("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title) if info is not None and info.title else None
    except DocumentRejected:
        raise
    except Exception as exc:
        raise DocumentUnreadable(f"not a readable PDF: {exc}") from exc
    return "\n\n".join(pages), title, {"pages": len(pages)}


def extract(document: SourceDocument, max_bytes: int) -> Extracted:
    """Extract ``document``'s text.

    :raises DocumentTooLarge: more than ``max_bytes`` bytes.
    :raises UnsupportedMediaType: a format ember does not read (BEIR JSONL must be split with
        :func:`beir_documents` first).
    :raises BinaryDocument: binary content that is not a PDF.
    :raises DocumentUnreadable: a PDF that cannot be read.
    :raises EmptyDocument: no text after extraction.
    """
    size = len(document.content)
    if size > max_bytes:
        raise DocumentTooLarge(f"{size} bytes is over the limit of {max_bytes}")
    media_type = media_type_for(document.source, document.media_type)
    if media_type == BEIR_JSONL:
        raise UnsupportedMediaType("a BEIR JSONL file holds many documents; ingest it as a corpus")
    metadata: dict[str, Any] = {}
    title: str | None = None
    if media_type == "application/pdf":
        text, title, metadata = _pdf(document.content)
    elif media_type == "text/html":
        text, title = _html(document.content)
    elif media_type in ("text/plain", "text/markdown", None):
        text = _decode(document.content)
        media_type = media_type or "text/plain"
        if media_type == "text/markdown":
            title = _markdown_title(text)
    else:
        raise UnsupportedMediaType(
            f"{media_type!r} is not supported; supported: {', '.join(SUPPORTED_MEDIA_TYPES)}"
        )
    text = normalize(text)
    if not text:
        raise EmptyDocument("no text found" + (" (a scanned PDF?)" if metadata else ""))
    return Extracted(
        text=text,
        title=document.title or title,
        media_type=media_type,
        size_bytes=size,
        metadata={**metadata, **document.metadata},
    )


def beir_documents(
    data: bytes,
    prefix: str = "",
    metadata: Mapping[str, Any] | None = None,
    first_line: int = 1,
) -> Iterator[SourceDocument | DocumentRejected]:
    """One :class:`SourceDocument` per line of a BEIR ``corpus.jsonl`` (``_id``, ``title``,
    ``text``, optional ``metadata``); source is ``prefix + _id``. A bad line yields a
    :class:`DocumentRejected` naming the line (counted from ``first_line``, for a part of a
    file) instead of stopping the whole file."""
    for number, line in enumerate(io.BytesIO(data), start=first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = str(row["_id"])
            text = row.get("text") or ""
            extra = row.get("metadata") or {}
            if not isinstance(text, str) or not isinstance(extra, dict):
                raise TypeError("text must be a string and metadata an object")
        except (ValueError, KeyError, TypeError) as exc:
            yield DocumentRejected(f"line {number}: not a BEIR corpus record: {exc}")
            continue
        yield SourceDocument(
            source=prefix + key,
            content=text.encode(),
            media_type="text/plain",
            title=row.get("title") or None,
            metadata={**(metadata or {}), **extra, "beir_id": key},
        )
