"""Extraction of every supported format, and clear errors for the rest."""

from __future__ import annotations

import json

import pytest

from ember.errors import (
    BinaryDocument,
    DocumentRejected,
    DocumentTooLarge,
    DocumentUnreadable,
    EmptyDocument,
    UnsupportedMediaType,
)
from ember.memory.extract import SourceDocument, beir_documents, extract, media_type_for

LIMIT = 1_000_000


def pdf_with_text(text: str, title: str = "A PDF title") -> bytes:
    """A minimal valid one-page PDF whose content stream shows ``text`` in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (" + title.encode() + b") >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def test_plain_text_and_metadata() -> None:
    got = extract(SourceDocument("a.txt", b"Hello   world\r\n", metadata={"k": 1}), LIMIT)
    assert (got.text, got.title, got.media_type, got.size_bytes) == (
        "Hello world",
        None,
        "text/plain",
        15,
    )
    assert got.metadata == {"k": 1}


def test_markdown_title_from_first_heading() -> None:
    got = extract(SourceDocument("notes.md", b"intro\n# Big Title\nbody"), LIMIT)
    assert got.media_type == "text/markdown"
    assert got.title == "Big Title"


def test_html_drops_scripts_and_takes_the_title() -> None:
    html = (
        b"<html><head><title>Page T</title><style>p{}</style></head>"
        b"<body><h1>Head</h1><script>alert(1)</script><p>Visible &amp; text</p></body></html>"
    )
    got = extract(SourceDocument("page.html", html), LIMIT)
    assert got.title == "Page T"
    assert "Visible & text" in got.text and "Head" in got.text
    assert "alert" not in got.text and "p{}" not in got.text and "Page T" not in got.text


def test_pdf_text_title_and_pages() -> None:
    got = extract(SourceDocument("paper.pdf", pdf_with_text("Quantum dots glow")), LIMIT)
    assert got.media_type == "application/pdf"
    assert "Quantum dots glow" in got.text
    assert got.title == "A PDF title"
    assert got.metadata["pages"] == 1


def test_explicit_media_type_wins_over_suffix() -> None:
    assert media_type_for("x.txt", "text/html; charset=utf-8") == "text/html"
    assert media_type_for("x.MD") == "text/markdown"
    assert media_type_for("x.docx") is None


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (SourceDocument("a.txt", b""), EmptyDocument),
        (SourceDocument("a.txt", b"  \n\t "), EmptyDocument),
        (SourceDocument("a.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00"), BinaryDocument),
        (SourceDocument("a.txt", bytes(range(1, 32)) * 8 + b"\xe9"), BinaryDocument),
        (SourceDocument("a.pdf", b"%PDF-1.4 garbage"), DocumentUnreadable),
        (SourceDocument("a.docx", b"PK", media_type="application/msword"), UnsupportedMediaType),
        (SourceDocument("c.jsonl", b'{"_id": "1"}'), UnsupportedMediaType),
        (SourceDocument("big.txt", b"x" * (LIMIT + 1)), DocumentTooLarge),
    ],
)
def test_rejections_have_stable_codes(document: SourceDocument, error: type) -> None:
    with pytest.raises(error) as caught:
        extract(document, LIMIT)
    assert isinstance(caught.value, DocumentRejected)
    assert caught.value.code == error.code


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("café ünïcode".encode(), "café ünïcode"),
        ("\ufeffcafé".encode(), "café"),
        ("café, UTF-16".encode("utf-16"), "café, UTF-16"),
        (b"caf\xe9 latin-1, na\xefve", "café latin-1, naïve"),
        (b"\x93quoted\x94 \x80 5, Windows-1252", "“quoted” € 5, Windows-1252"),
    ],
)
def test_text_is_utf8_else_windows_1252(content: bytes, text: str) -> None:
    assert extract(SourceDocument("a.txt", content), LIMIT).text == text


def test_unknown_suffix_with_text_is_plain_text() -> None:
    assert extract(SourceDocument("README", b"just text"), LIMIT).media_type == "text/plain"


def test_beir_lines_become_documents_and_bad_lines_errors() -> None:
    lines = [
        json.dumps({"_id": "d1", "title": "T1", "text": "first", "metadata": {"y": 1}}),
        "",
        "{not json",
        json.dumps({"_id": "d2", "text": "second"}),
        json.dumps({"title": "no id"}),
    ]
    items = list(beir_documents("\n".join(lines).encode(), prefix="sf:"))
    assert len(items) == 4
    first, bad, second, missing = items
    assert isinstance(first, SourceDocument) and isinstance(second, SourceDocument)
    assert (first.source, first.title, first.content) == ("sf:d1", "T1", b"first")
    assert first.metadata == {"y": 1, "beir_id": "d1"}
    assert second.title is None
    assert isinstance(bad, DocumentRejected) and "line 3" in bad.detail
    assert isinstance(missing, DocumentRejected) and "line 5" in missing.detail
