"""`ember ingest`, `ember search` and `ember collections` against a real local store."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_ingest_search_export_import(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Saturn has rings made of ice and rock.")
    (corpus / "sub" / "b.md").write_text("# Mars\nMars is the red planet with dusty storms.")
    (corpus / "bad.txt").write_bytes(b"\x00\x01 not text")
    (corpus / "skip.docx").write_bytes(b"PK")
    (corpus / "beir.jsonl").write_text(
        json.dumps({"_id": "j1", "title": "Jupiter", "text": "The largest planet."}) + "\n"
    )

    result = runner.invoke(app, ["ingest", str(corpus), "--collection", "space"], env=env)
    assert result.exit_code == 1, result.output
    assert "3 created" in result.output and "1 failed" in result.output
    assert "bad.txt: error[binary_document]" in result.output

    again = runner.invoke(app, ["ingest", str(corpus / "a.txt"), "-C", "space"], env=env)
    assert again.exit_code == 0 and "1 unchanged" in again.output

    found = runner.invoke(
        app, ["search", "ringed planet of ice", "-C", "space", "--explain"], env=env
    )
    assert found.exit_code == 0, found.output
    first_row = next(line for line in found.output.splitlines() if line.startswith("│ 1 "))
    assert "a.txt" in first_row

    filtered = runner.invoke(
        app, ["search", "planet", "-C", "space", "--filter", '{"beir_id": "j1"}'], env=env
    )
    assert "j1" in filtered.output and "a.txt" not in filtered.output
    bad_filter = runner.invoke(
        app, ["search", "x", "-C", "space", "--filter", '{"a": {"$x": 1}}'], env=env
    )
    assert bad_filter.exit_code == 2 and "error[invalid_filter]" in bad_filter.output

    listed = runner.invoke(app, ["collections", "list"], env=env)
    space_row = next(line for line in listed.output.splitlines() if " space " in line)
    assert "sentence-transformers" in space_row or "minilm" in space_row.lower(), space_row

    export = tmp_path / "space.ember.gz"
    assert (
        runner.invoke(app, ["collections", "export", "space", str(export)], env=env).exit_code == 0
    )
    other = {"EMBER_HOME": str(tmp_path / "other"), "COLUMNS": "200"}
    imported = runner.invoke(app, ["collections", "import", str(export), "--as", "copy"], env=other)
    assert imported.exit_code == 0 and "imported 3 documents into copy" in imported.output
    copied = runner.invoke(app, ["search", "ringed planet of ice", "-C", "copy"], env=other)
    assert "a.txt" in copied.output

    missing = runner.invoke(app, ["search", "x", "-C", "nope"], env=env)
    assert missing.exit_code == 1 and "error[collection_not_found]" in missing.output
    deleted = runner.invoke(app, ["collections", "delete", "space", "--yes"], env=env)
    assert deleted.exit_code == 0


def test_ingest_of_a_missing_path(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "nothing"), "-C", "x"], env={"EMBER_HOME": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "error[validation_failed]" in result.output
    assert "no such file or directory" in result.output


def test_one_name_rule_and_workspaces_on_every_path_that_creates(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    doc = tmp_path / "a.txt"
    doc.write_text("Saturn has rings made of ice and rock.")
    upper = runner.invoke(app, ["ingest", str(doc), "--collection", "UPPER/Case"], env=env)
    assert upper.exit_code == 2 and "error[validation_failed]" in upper.output
    assert "invalid collection name" in upper.output
    assert runner.invoke(app, ["workspaces", "create", "team-b"], env=env).exit_code == 0
    into_b = runner.invoke(app, ["ingest", str(doc), "-C", "space", "-w", "team-b"], env=env)
    assert into_b.exit_code == 0, into_b.output
    default = runner.invoke(app, ["collections", "list"], env=env)
    assert "space" not in default.output
    team_b = runner.invoke(app, ["collections", "list", "--workspace", "team-b"], env=env)
    assert "space" in team_b.output
    hidden = runner.invoke(app, ["search", "rings", "-C", "space"], env=env)
    assert hidden.exit_code == 1 and "error[collection_not_found]" in hidden.output
    export = tmp_path / "space.ember.gz"
    exported = runner.invoke(
        app, ["collections", "export", "space", str(export), "-w", "team-b"], env=env
    )
    assert exported.exit_code == 0, exported.output
    bad_as = runner.invoke(app, ["collections", "import", str(export), "--as", "Bad Name"], env=env)
    assert bad_as.exit_code == 2 and "error[validation_failed]" in bad_as.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--mode", "fuzzy"], "error[validation_failed]: --mode must be hybrid, dense or keyword"),
        (["--filter", "{bad"], "error[invalid_filter]: --filter is not JSON"),
    ],
)
def test_bad_search_arguments_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    result = runner.invoke(app, ["search", "rings", "-C", "corpus", *args], env=env)
    assert result.exit_code == 2, result.output
    assert line in result.stderr


def test_an_empty_query_is_refused_as_the_api_does(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    doc = tmp_path / "a.txt"
    doc.write_text("Saturn has rings made of ice and rock.")
    assert runner.invoke(app, ["ingest", str(doc), "-C", "corpus"], env=env).exit_code == 0
    empty = runner.invoke(app, ["search", "", "-C", "corpus"], env=env)
    assert empty.exit_code == 2, empty.output
    assert "error[validation_failed]: QUERY must be 1 to 10000 characters" in empty.stderr
    assert "a.txt" not in empty.output
    too_long = runner.invoke(app, ["search", "x" * 10001, "-C", "corpus"], env=env)
    assert too_long.exit_code == 2 and "error[validation_failed]" in too_long.stderr


def test_export_to_a_missing_directory_names_it(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    assert runner.invoke(app, ["collections", "create", "space"], env=env).exit_code == 0
    target = tmp_path / "missing" / "dir" / "x.gz"
    result = runner.invoke(app, ["collections", "export", "space", str(target)], env=env)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert (
        f"error[bad_request]: {target}: the directory {target.parent} does not exist"
        in result.stderr
    )
    into_dir = runner.invoke(app, ["collections", "export", "space", str(tmp_path)], env=env)
    assert into_dir.exit_code == 2
    assert f"error[bad_request]: {tmp_path} is a directory" in into_dir.stderr


def _complete_lines(truncated: bytes) -> int:
    """How many whole lines the readable part of a truncated gzip file holds."""
    return zlib.decompressobj(wbits=31).decompress(truncated).count(b"\n")


def test_a_truncated_import_names_the_line_and_leaves_nothing(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, planet in enumerate(["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn"]):
        (corpus / f"{number}.txt").write_text(f"{planet} is planet number {number + 1}.")
    (corpus / "markup.txt").write_text("Brackets [bold]stay[/bold] as typed [/x] in results.")
    assert runner.invoke(app, ["ingest", str(corpus), "-C", "space"], env=env).exit_code == 0
    found = runner.invoke(app, ["search", "brackets typed", "-C", "space"], env=env)
    assert found.exit_code == 0, found.output
    assert "[bold]stay[/bold] as typed [/x]" in found.stdout

    export = tmp_path / "space.ember.gz"
    exported = runner.invoke(app, ["collections", "export", "space", str(export)], env=env)
    assert exported.exit_code == 0, exported.output
    whole = export.read_bytes()
    truncated = tmp_path / "truncated.ember.gz"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    line = _complete_lines(truncated.read_bytes()) + 1
    assert 2 < line < 8  # the header and some documents are readable

    result = runner.invoke(app, ["collections", "import", str(truncated), "--as", "copy"], env=env)
    assert result.exit_code == 2, result.output
    assert "Aborted" not in result.output and "Traceback" not in result.output
    assert (
        f"error[invalid_export_line]: {truncated}:{line}: the export is truncated or damaged"
        in result.stderr
    )
    listed = runner.invoke(app, ["collections", "list"], env=env)
    assert "copy" not in listed.stdout
