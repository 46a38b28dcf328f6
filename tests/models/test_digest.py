"""What pinning checks of a model file: its GGUF header and its sha256 digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ember.errors import ValidationFailed
from ember.models.digest import GGUF_MAGIC, file_digest, normalize_digest, require_gguf


def test_a_gguf_header_passes(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(GGUF_MAGIC + (3).to_bytes(4, "little"))
    require_gguf(model)


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"my notes\n", "starts with b'my n'"),
        (b"GGU", "starts with b'GGU'"),
        (b"", "is empty"),
        (b"\x00\x00\x00\x00gguf", "starts with b'\\x00\\x00\\x00\\x00'"),
    ],
)
def test_anything_else_is_refused_with_what_it_starts_with(
    tmp_path: Path, content: bytes, found: str
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ValidationFailed) as raised:
        require_gguf(path)
    assert raised.value.code == "validation_failed"
    assert str(path) in raised.value.detail and found in raised.value.detail
    assert "b'GGUF'" in raised.value.detail


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        require_gguf(tmp_path / "missing.gguf")


def test_the_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(GGUF_MAGIC + bytes(3 << 20))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(path) == f"sha256:{expected}"
    assert normalize_digest(expected.upper()) == f"sha256:{expected}"
