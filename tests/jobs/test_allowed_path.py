"""Which server paths an ``ingest`` job may read, and the input it takes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ember.errors import PathNotAllowed
from ember.jobs.memory_kinds import IngestInput, allowed_path


def test_paths_inside_a_root_pass_and_others_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    assert allowed_path(str(root / "sub"), [str(root)]) == (root / "sub").resolve()
    for path in (tmp_path / "secret", root / "escape", root / ".." / "secret"):
        with pytest.raises(PathNotAllowed, match=r"memory\.ingest_roots"):
            allowed_path(str(path), [str(root)])
    with pytest.raises(PathNotAllowed, match="none are configured"):
        allowed_path(str(root), [])


def test_an_ingest_takes_documents_or_a_path_not_both() -> None:
    assert IngestInput(collection="c", path="/data").path == "/data"
    for bad in (
        {"collection": "c"},
        {"collection": "c", "path": "/d", "documents": [{"source": "a", "text": "b"}]},
    ):
        with pytest.raises(ValidationError, match="exactly one of documents and path"):
            IngestInput.model_validate(bad)
