"""Sources of documents: listing, counting, and cutting a JSONL corpus into parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember.errors import DocumentRejected, DocumentUnreadable, PathNotAllowed, ValidationFailed
from ember.memory.extract import SourceDocument
from ember.memory.sources import (
    SourcePart,
    count_documents,
    list_files,
    read_documents,
    read_part,
    split_parts,
)


def _jsonl(path: Path, count: int, bad_at: int | None = None) -> Path:
    lines = [json.dumps({"_id": f"d{i}", "text": f"text {i}"}) for i in range(count)]
    if bad_at is not None:
        lines[bad_at] = "{broken"
    lines.insert(3, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parts_cover_every_document_once_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    _jsonl(tmp_path / "b.jsonl", 23, bad_at=17)
    (tmp_path / ".hidden.txt").write_text("no")
    files = list_files(tmp_path)
    assert [f.name for f in files] == ["a.txt", "b.jsonl"]
    parts = split_parts(files, tmp_path, part_documents=5)
    assert [p.documents for p in parts] == [1, 5, 5, 5, 5, 3]
    assert sum(p.documents for p in parts) == count_documents(files) == 24
    items = [item for part in parts for item in read_part(part)]
    whole = list(read_documents(files, tmp_path))
    assert [getattr(i, "source", str(i)) for i in items] == [
        getattr(i, "source", str(i)) for i in whole
    ]
    bad = [item for item in items if isinstance(item, DocumentRejected)]
    assert len(bad) == 1 and "line 19" in bad[0].detail
    assert isinstance(items[0], SourceDocument) and items[0].source == "a.txt"


def test_a_missing_path_and_an_unreadable_part(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no such file"):
        list_files(tmp_path / "nope")
    (gone,) = read_part(SourcePart(str(tmp_path / "gone.txt"), "gone.txt"))
    assert isinstance(gone, DocumentUnreadable) and "gone.txt" in gone.detail


def test_links_out_of_the_directory_are_listed_and_refused_when_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    (root / "inside.txt").write_text("inside")
    _jsonl(outside / "secret.jsonl", 7)
    (outside / "dir" / "more.txt").write_text("secret")
    (root / "corpus.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "sub" / "away").symlink_to(outside / "dir", target_is_directory=True)
    (root / "sub" / "alias.txt").symlink_to(root / "inside.txt")
    files = list_files(root)
    assert [str(f.relative_to(root)) for f in files] == [
        "corpus.jsonl",
        "inside.txt",
        "sub/alias.txt",
        "sub/away",
    ]
    assert count_documents(files, root) == 4
    parts = split_parts(files, root)
    assert [p.documents for p in parts] == [1, 1, 1, 1]
    for items in ([i for p in parts for i in read_part(p)], list(read_documents(files, root))):
        refused = [i for i in items if isinstance(i, PathNotAllowed)]
        assert sorted(i.detail.split(":")[0] for i in refused) == ["corpus.jsonl", "sub/away"]
        read = [i for i in items if isinstance(i, SourceDocument)]
        assert [(i.source, i.content) for i in read] == [
            ("inside.txt", b"inside"),
            ("sub/alias.txt", b"inside"),
        ]
    swapped = SourcePart(str(root / "inside.txt"), "inside.txt", root=str(root))
    (root / "inside.txt").unlink()
    (root / "inside.txt").symlink_to(outside / "secret.jsonl")
    (refused,) = read_part(swapped)
    assert isinstance(refused, PathNotAllowed), "checked again when the part is read"
