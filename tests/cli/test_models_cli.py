"""``ember models list|pin|rm`` on a local database, with the real bundled model file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app
from ember.models import ModelRecord

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMBER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pin_list_and_remove(home: Path, gemma: ModelRecord) -> None:
    pinned = runner.invoke(
        app, ["models", "pin", "mine", "--path", gemma.path, "--digest", gemma.digest, "--warm"]
    )
    assert pinned.exit_code == 0, pinned.output
    assert gemma.digest in pinned.stdout
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "mine" in listed.stdout and "yes" in listed.stdout
    removed = runner.invoke(app, ["models", "rm", "mine", "--url", "http://127.0.0.1:9"])
    assert removed.exit_code == 0, removed.output
    assert "mine" not in runner.invoke(app, ["models", "list"]).stdout


def test_pin_refuses_a_file_with_another_digest(home: Path, gemma: ModelRecord) -> None:
    wrong = "sha256:" + "1" * 64
    result = runner.invoke(app, ["models", "pin", "mine", "--path", gemma.path, "--digest", wrong])
    assert result.exit_code == 1
    assert "error[model_digest_mismatch]" in result.stderr
    assert "mine" not in runner.invoke(app, ["models", "list"]).stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--digest", "sha256:abc"], "validation_failed"),
        (["--template", "chatml"], "validation_failed"),
    ],
)
def test_pin_rejects_bad_options(
    home: Path,
    gemma: ModelRecord,
    args: list[str],
    code: str,
) -> None:
    result = runner.invoke(app, ["models", "pin", "mine", "--path", gemma.path, *args])
    assert result.exit_code == 1 and f"error[{code}]" in result.stderr


def test_removing_an_unknown_model_says_so(home: Path) -> None:
    result = runner.invoke(app, ["models", "rm", "ghost"])
    assert result.exit_code == 1 and "error[model_not_registered]" in result.stderr


def test_ps_without_a_running_ember_says_how_to_start_it(home: Path) -> None:
    result = runner.invoke(app, ["models", "ps", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "error[not_ready]" in result.stderr
