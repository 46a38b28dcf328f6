"""``ember ingest`` as a new user runs it: what it prints for failed documents, legacy
encodings and a folder with nothing to ingest, against a real local store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def test_failures_print_plainly_and_latin1_text_is_ingested(
    tmp_path: Path, env: dict[str, str]
) -> None:
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "bad.txt").write_bytes(b"\x00\x01 not text")
    (corpus / "latin1.txt").write_bytes(b"Caf\xe9 cr\xe8me br\xfbl\xe9e, a na\xefve dessert.")
    (corpus / "windows.txt").write_bytes(b"\x93Smart quotes\x94 cost 5 \x80 in Windows.")
    (corpus / "utf8.txt").write_text("Crème brûlée, written as UTF-8.", encoding="utf-8")

    result = runner.invoke(app, ["ingest", str(corpus)], env=env)
    assert result.exit_code == 1, result.output
    assert "failed bad.txt: error[binary_document]: the content contains NUL bytes" in (
        result.stdout
    )
    assert "[red]" not in result.output and "[/]" not in result.output
    assert "3 created" in result.stdout and "1 failed" in result.stdout

    found = runner.invoke(app, ["search", "naïve dessert", "-C", "notes"], env=env)
    assert found.exit_code == 0, found.output
    first_row = next(line for line in found.stdout.splitlines() if line.startswith("│ 1 "))
    assert "latin1.txt" in first_row and "Café crème brûlée" in first_row
    quotes = runner.invoke(app, ["search", "smart quotes", "-C", "notes"], env=env)
    assert "“Smart quotes” cost 5 €" in quotes.stdout


@pytest.mark.parametrize("content", [{}, {".hidden.txt": "hidden", "skip.docx": "PK"}])
def test_a_folder_without_documents_says_so_and_creates_nothing(
    tmp_path: Path, env: dict[str, str], content: dict[str, str]
) -> None:
    folder = tmp_path / "emptydir"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text)

    result = runner.invoke(app, ["ingest", str(folder)], env=env)
    assert result.exit_code == 1, result.output
    assert f"error[not_found]: {folder}: no file to ingest in it" in result.stderr
    assert "no collection created" in result.stderr
    assert "created" not in result.stdout
    listed = runner.invoke(app, ["collections", "list"], env=env)
    assert listed.exit_code == 0 and "emptydir" not in listed.stdout


def test_a_missing_path_is_a_usage_error(tmp_path: Path, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "nothing"), "-C", "x"], env=env)
    assert result.exit_code == 2
    assert f"error[validation_failed]: {tmp_path / 'nothing'}: no such file" in result.stderr
