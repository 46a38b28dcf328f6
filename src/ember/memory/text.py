"""Text normalization and content hashing.

:func:`normalize` makes extracted text canonical (NFC, ``\\n`` line ends, no trailing spaces,
runs of spaces and of blank lines collapsed). :func:`content_hash` is stable over whitespace
and over the key order of metadata, so re-ingesting the same content is recognised however
it was laid out.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["content_hash", "normalize"]

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """Canonical form of extracted text (see module docstring); strips the ends."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def content_hash(text: str, title: str | None, metadata: Mapping[str, Any]) -> str:
    """SHA-256 hex of the words of ``title`` and ``text`` and of ``metadata`` as sorted JSON."""
    canonical = json.dumps(
        {
            "title": " ".join((title or "").split()),
            "text": " ".join(text.split()),
            "metadata": metadata,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
