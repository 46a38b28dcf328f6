"""The sha256 digest a model file is pinned to, as ``sha256:<hex>``."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_digest", "normalize_digest"]

_CHUNK = 1 << 20


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
