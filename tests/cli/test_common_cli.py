"""``ember.cli.common``: every failure escaping a command is an ``error[code]: detail`` line
with the exit code of its kind, never a traceback."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ember.cli import app
from ember.cli.common import exit_code, reported, translate
from ember.errors import (
    BadRequest,
    CollectionNotFound,
    ConfigError,
    EmberError,
    InvalidFilter,
    ValidationFailed,
)

runner = CliRunner()


def _json_error() -> json.JSONDecodeError:
    try:
        json.loads("{bad")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


def _unicode_error() -> UnicodeDecodeError:
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "code", "detail"),
    [
        (ValidationFailed("as is"), "validation_failed", "as is"),
        (typer.Abort(), "bad_request", "--yes"),
        (EOFError("Compressed file ended"), "bad_request", "truncated or damaged"),
        (zlib.error("invalid stored block"), "bad_request", "truncated or damaged"),
        (gzip.BadGzipFile("Not a gzipped file"), "bad_request", "truncated or damaged"),
        (_json_error(), "bad_request", "not JSON"),
        (_unicode_error(), "bad_request", "not utf-8 text"),
        (FileNotFoundError(2, "No such file or directory", "/no/x.gz"), "bad_request", "/no/x.gz"),
        (IsADirectoryError(21, "Is a directory", "/tmp"), "bad_request", "/tmp: Is a directory"),
        (NotADirectoryError(20, "Not a directory", "/a/f"), "bad_request", "/a/f"),
        (PermissionError(13, "Permission denied", "/srv/ember/x"), "bad_request", "/srv/ember/x"),
        (OSError(28, "No space left on device", "/full"), "internal", "/full: No space left"),
        (KeyError("bug"), "internal", "KeyError: 'bug'"),
    ],
)
def test_every_failure_is_translated(exc: Exception, code: str, detail: str) -> None:
    error = translate(exc)
    assert error.code == code
    assert detail in error.detail


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequest("x"), 2),
        (ValidationFailed("x"), 2),
        (InvalidFilter("x"), 2),
        (ConfigError("x"), 2),
        (CollectionNotFound("x"), 1),
        (EmberError("x"), 1),
    ],
)
def test_bad_input_exits_2_and_failures_1(error: EmberError, code: int) -> None:
    assert exit_code(error) == code


def _command(exc: BaseException) -> typer.Typer:
    one = typer.Typer()

    @one.command()
    def fail() -> None:
        with reported():
            raise exc

    return one


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (OSError(28, "No space left on device", "/full"), 1, "error[internal]: /full: No space"),
        (EOFError("ended early"), 2, "error[bad_request]: the file is truncated or damaged"),
        (RuntimeError("a bug"), 1, "error[internal]: RuntimeError: a bug"),
        (typer.Exit(3), 3, None),
        (typer.BadParameter("nope"), 2, "Invalid value: nope"),
    ],
)
def test_reported_prints_one_line_and_its_exit_code(
    exc: BaseException, code: int, line: str | None
) -> None:
    result = runner.invoke(_command(exc), [])
    assert result.exit_code == code
    assert isinstance(result.exception, SystemExit) or result.exception is None
    assert "Traceback" not in result.output
    if line is not None:
        assert line in result.output


def test_an_unanswered_confirmation_is_an_error_line(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["collections", "create", "keep"], env=env).exit_code == 0
    result = runner.invoke(app, ["collections", "delete", "keep"], env=env)  # stdin: empty
    assert result.exit_code == 2, result.output
    assert "error[bad_request]: aborted: the question got no answer (pass --yes" in result.stderr
    assert "Aborted" not in result.output
    assert "keep" in runner.invoke(app, ["collections", "list"], env=env).stdout
