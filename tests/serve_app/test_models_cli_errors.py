"""``ember models warm`` against the whole app over real HTTP (issue 15): what ember's Ollama
dialect answers (``{"error", "code"}``) prints as ``error[code]: detail``, not as a bare
``HTTP 404`` / ``HTTP 403``."""

from __future__ import annotations

from typer.testing import CliRunner

from ember.cli import app
from tests.serve_app.conftest import Serve

runner = CliRunner()


def test_warming_an_unknown_model_says_there_is_none(serve: Serve) -> None:
    ember = serve(EMBER_MODELS_BUNDLED="false")
    _, secret = ember.token("admin")
    result = runner.invoke(app, ["models", "warm", "ghost", "--url", ember.url, "--token", secret])
    assert result.exit_code == 1, result.output
    assert "error[provider_model_not_found]: no model or alias is called 'ghost'" in (result.stderr)


def test_warming_without_the_scope_says_which_scope_it_needs(serve: Serve) -> None:
    ember = serve(EMBER_MODELS_BUNDLED="false")
    _, secret = ember.token("memory:read")
    result = runner.invoke(app, ["models", "warm", "ghost", "--url", ember.url, "--token", secret])
    assert result.exit_code == 1, result.output
    assert "error[forbidden]: this needs the scope 'models:use'" in result.stderr
