"""What pinning checks of a model file: that it is a GGUF file (:func:`require_gguf`), and the
sha256 digest it is pinned to, as ``sha256:<hex>``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ember.errors import ValidationFailed

__all__ = ["GGUF_MAGIC", "file_digest", "normalize_digest", "require_gguf"]

_CHUNK = 1 << 20

GGUF_MAGIC = b"GGUF"
"""The four bytes every GGUF file starts with."""


def require_gguf(path: Path | str) -> None:
    """Check that ``path`` starts with :data:`GGUF_MAGIC` (only the header is read).

    :raises ValidationFailed: it does not, so it is no GGUF model file.
    :raises FileNotFoundError: there is no such file.
    """
    with open(path, "rb") as handle:
        head = handle.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        found = f"starts with {head!r}" if head else "is empty"
        raise ValidationFailed(
            f"{path} is not a GGUF model file: it {found}, and a GGUF file starts with "
            f"{GGUF_MAGIC!r} (llama.cpp loads GGUF files only; convert the model to GGUF first)"
        )


def file_digest(path: Path | str) -> str:
    """``sha256:<hex>`` of the file's bytes (read in 1 MiB blocks).

    :raises FileNotFoundError: there is no such file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def normalize_digest(value: str) -> str:
    """``value`` as ``sha256:<64 lowercase hex>``; a bare hex digest gets the prefix.

    :raises ValueError: ``value`` is not a sha256 digest.
    """
    text = value.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{value!r} is not a sha256 digest (64 hex characters)")
    return f"sha256:{text}"
