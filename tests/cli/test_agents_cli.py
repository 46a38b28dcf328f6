"""``ember agents`` against a running ember (the whole API on uvicorn, its job system, a real
bubblewrap sandbox, the scripted chat fake as the model): profiles from YAML files, a run
followed to its answer with the agent's file downloaded, and bad input with clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.agent_app import scripted_app
from tests.support.live_app import LiveApp

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer(model="agent-model") as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model: ScriptedChatServer) -> Iterator[LiveApp]:
    with scripted_app(tmp_path_factory.mktemp("agents-cli"), model) as served:
        yield served


def ember(live: LiveApp, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    env = {"EMBER_TOKEN": live.token, "COLUMNS": "200"}
    return runner.invoke(app, [*args, "--url", live.url], env=env, input=input)


def test_profiles_from_files_and_a_run_with_its_file(
    live: LiveApp, model: ScriptedChatServer, tmp_path: Path
) -> None:
    profile = tmp_path / "writer.yaml"
    profile.write_text(
        "name: writer\nmodel: default\ntools: [write_file]\nlimits: {max_steps: 4}\n"
    )
    created = ember(live, "agents", "create", str(profile))
    assert created.exit_code == 0 and "created agent writer" in created.output, created.output
    listed = ember(live, "agents", "list")
    assert "writer" in listed.output and "write_file" in listed.output
    shown = ember(live, "agents", "show", "writer")
    assert "max_steps: 4" in shown.output

    profile.write_text("name: writer\nmodel: default\ntools: [write_file, read_file]\n")
    assert ember(live, "agents", "update", str(profile)).exit_code == 0
    assert "read_file" in ember(live, "agents", "show", "writer").output

    model.load(
        [
            Turn(calls=[ScriptedCall("write_file", {"path": "notes/hi.txt", "content": "hi"})]),
            Turn(text="Wrote notes/hi.txt."),
        ]
    )
    out = tmp_path / "out"
    ran = ember(live, "agents", "run", "writer", "Write hi.", "--output", str(out))
    assert ran.exit_code == 0, ran.output
    assert "Wrote notes/hi.txt." in ran.output and "tool call" in ran.output
    assert "artifact notes/hi.txt (2 bytes)" in ran.output
    assert (out / "notes" / "hi.txt").read_text() == "hi"

    deleted = ember(live, "agents", "delete", "writer", "--yes")
    assert deleted.exit_code == 0
    gone = ember(live, "agents", "show", "writer")
    assert gone.exit_code == 1 and "error[agent_not_found]" in gone.output


def test_bad_profiles_and_runs_say_why(live: LiveApp, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    result = ember(live, "agents", "create", str(broken))
    assert result.exit_code == 2 and "error[validation_failed]" in result.output
    missing = ember(live, "agents", "create", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "error[bad_request]" in missing.output

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: odd\nmodel: default\ntools: [teleport]\n")
    refused = ember(live, "agents", "create", str(unknown))
    assert refused.exit_code == 1 and "error[validation_failed]" in refused.output
    assert "teleport" in refused.output

    nobody = ember(live, "agents", "run", "nobody", "x")
    assert nobody.exit_code == 1 and "error[agent_not_found]" in nobody.output
    bad_json = ember(live, "agents", "run", "nobody", "x", "--overrides", "{no")
    assert bad_json.exit_code == 2 and "--overrides" in bad_json.output
