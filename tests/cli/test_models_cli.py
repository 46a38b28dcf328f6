"""``ember models list|pin|rm`` on a local database, with the real bundled model file, and
``warm|ps|rm`` against a server on 127.0.0.1 that answers errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from ember.cli import app
from ember.models import ModelRecord
from ember.models.digest import file_digest
from tests.fakes.server import ThreadedFakeServer

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
    assert result.exit_code == 2 and f"error[{code}]" in result.stderr


def test_removing_an_unknown_model_says_so(home: Path) -> None:
    result = runner.invoke(app, ["models", "rm", "ghost"])
    assert result.exit_code == 1 and "error[model_not_registered]" in result.stderr


def test_ps_without_a_running_ember_says_how_to_start_it(home: Path) -> None:
    result = runner.invoke(app, ["models", "ps", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "error[not_ready]" in result.stderr


def test_pin_refuses_a_file_that_is_not_gguf(home: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a model\n")
    result = runner.invoke(app, ["models", "pin", "notes", "--path", str(notes)])
    assert result.exit_code == 2, result.output
    assert "error[validation_failed]" in result.stderr
    assert str(notes) in result.stderr and "is not a GGUF model file" in result.stderr
    assert "b'GGUF'" in result.stderr
    assert "notes" not in runner.invoke(app, ["models", "list"]).stdout


def test_pin_refuses_an_empty_file(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["models", "pin", "empty", "--path", str(empty)])
    assert result.exit_code == 2 and "error[validation_failed]" in result.stderr
    assert "is empty" in result.stderr


def test_pin_takes_a_file_with_a_gguf_header(home: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))
    result = runner.invoke(app, ["models", "pin", "tiny", "--path", str(model)])
    assert result.exit_code == 0, result.output
    assert f"pinned tiny to {file_digest(model)}" in result.stdout
    assert "tiny" in runner.invoke(app, ["models", "list"]).stdout


class Refusing(ThreadedFakeServer):
    """An ember's Ollama API on 127.0.0.1 that refuses every call with ``status`` and
    ``body``, as ember's dialect answers (``{"error", "code"}``) or as problem+json."""

    def __init__(self) -> None:
        self._init_server("refusing ember")
        self.answer: tuple[int, dict[str, Any], str] = (503, {}, "application/json")

    def _asgi(self) -> FastAPI:
        app = FastAPI()

        def refuse() -> JSONResponse:
            status, body, media_type = self.answer
            return JSONResponse(body, status, media_type=media_type)

        app.add_api_route("/api/generate", refuse, methods=["POST"])
        app.add_api_route("/api/ps", refuse, methods=["GET"])
        return app


@pytest.fixture
def refusing() -> Iterator[Refusing]:
    with Refusing() as server:
        yield server


def _ollama(status: int, code: str, message: str) -> tuple[int, dict[str, Any], str]:
    return status, {"error": message, "code": code}, "application/json"


def _problem(status: int, code: str, detail: str) -> tuple[int, dict[str, Any], str]:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail, "code": code}
    return status, body, "application/problem+json"


@pytest.mark.parametrize("shape", [_ollama, _problem])
@pytest.mark.parametrize(
    ("command", "status", "code", "detail"),
    [
        (["warm", "ghost"], 404, "model_not_registered", "no model is registered as 'ghost'"),
        (["warm", "mine"], 403, "forbidden", "keep_alive -1 needs the admin scope"),
        (["ps"], 503, "not_ready", "the model registry is still starting"),
    ],
)
def test_warm_and_ps_print_what_ember_answered(
    home: Path,
    refusing: Refusing,
    shape: Any,
    command: list[str],
    status: int,
    code: str,
    detail: str,
) -> None:
    refusing.answer = shape(status, code, detail)
    url = f"http://127.0.0.1:{refusing.port}"
    result = runner.invoke(app, ["models", *command, "--url", url])
    assert result.exit_code == 1, result.output
    assert f"error[{code}]: {detail}" in result.stderr


def test_rm_says_why_ember_did_not_unload(
    home: Path, gemma: ModelRecord, refusing: Refusing
) -> None:
    assert runner.invoke(app, ["models", "pin", "mine", "--path", gemma.path]).exit_code == 0
    refusing.answer = _ollama(403, "forbidden", "unloading a model needs the admin scope")
    url = f"http://127.0.0.1:{refusing.port}"
    result = runner.invoke(app, ["models", "rm", "mine", "--url", url])
    assert result.exit_code == 0, result.output
    assert "error[forbidden]: unloading a model needs the admin scope" in result.stderr
    assert "removed mine" in result.stdout
    assert "mine" not in runner.invoke(app, ["models", "list"]).stdout
