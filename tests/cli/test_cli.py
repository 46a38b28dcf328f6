"""The ember command line: clear messages and exit codes, and the db commands for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from ember import __version__
from ember.cli import app
from ember.cli.server import serve_record, serving_recorded
from ember.config import load_config
from ember.storage import Database, Migrator, SqlCollectionRepository
from tests.fakes.server import ThreadedFakeServer
from tests.support.postgres import free_port

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env=env, input=input)


def test_version() -> None:
    result = invoke("version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ember {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "No such command"),
        (["db", "backup"], "Missing argument"),
        (["up", "--port", "0"], "Invalid value"),
        (["up", "--port", "many"], "Invalid value"),
        (["db", "explode"], "No such command"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_up_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("up", "--port", str(port), env={"EMBER_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "error[port_in_use]" in result.output
    assert f"127.0.0.1:{port} is already in use" in result.output


def test_up_reports_an_unreachable_cluster_quickly(tmp_path: Path) -> None:
    env = {"EMBER_HOME": str(tmp_path), "EMBER_RAY_ADDRESS": f"127.0.0.1:{free_port()}"}
    result = invoke("up", "--port", str(free_port()), env=env)
    assert result.exit_code == 1
    assert "error[cluster_unavailable]: no Ray cluster answers at 127.0.0.1:" in result.output


def test_status_shows_what_is_down(tmp_path: Path) -> None:
    env = {
        "EMBER_HOME": str(tmp_path),
        "EMBER_RAY_ADDRESS": f"127.0.0.1:{free_port()}",
        "EMBER_SERVER_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    result = invoke("status", env=env)
    assert result.exit_code == 1
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "needs upgrade" in rows["database"]
    assert "down" in rows["ray"] and "no Ray cluster answers" in rows["ray"]
    assert "down" in rows["api"]
    assert rows["sandbox"].split("│")[2].strip() == "ok" and "seccomp" in rows["sandbox"]


def test_status_names_what_the_sandbox_lacks(tmp_path: Path) -> None:
    env = {
        "EMBER_HOME": str(tmp_path),
        "EMBER_RAY_ADDRESS": f"127.0.0.1:{free_port()}",
        "EMBER_SERVER_PORT": str(free_port()),
        "COLUMNS": "200",
        "PATH": str(tmp_path / "no-tools-here"),
    }
    result = invoke("status", env=env)
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "unavailable" in rows["sandbox"] and "bwrap" in rows["sandbox"]


@pytest.fixture
def stale_ray_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What a Ray cluster that died leaves behind: the file ``ray_current_cluster`` naming its
    address (a closed loopback port), in a Ray temp directory of this test's own
    (``RAY_TMPDIR``), and no Ray process running (Ray's scan for local clusters is stubbed,
    so that clusters of other tests on this machine do not count)."""
    from ray._private import services

    address = f"127.0.0.1:{free_port()}"
    ray_dir = tmp_path / "raytmp" / "ray"
    ray_dir.mkdir(parents=True)
    (ray_dir / "ray_current_cluster").write_text(address)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", frozenset)
    return address


def test_status_with_a_stale_ray_address_says_ray_is_not_running(
    tmp_path: Path, stale_ray_address: str
) -> None:
    env = {
        "EMBER_HOME": str(tmp_path / "home"),
        "EMBER_SERVER_PORT": str(free_port()),
        "COLUMNS": "300",
    }
    result = invoke("status", env=env)
    assert result.exit_code == 1
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "down" in rows["ray"] and "Ray is not running" in rows["ray"]
    assert stale_ray_address in rows["ray"]


def test_up_with_a_stale_ray_address_reports_it(tmp_path: Path, stale_ray_address: str) -> None:
    env = {"EMBER_HOME": str(tmp_path / "home"), "EMBER_RAY_ADDRESS": "auto"}
    result = invoke("up", "--port", str(free_port()), env=env)
    assert result.exit_code == 1
    assert "error[cluster_unavailable]: Ray is not running" in result.output
    assert stale_ray_address in result.output


@pytest.mark.slow
def test_db_upgrade_backup_restore_roundtrip(database_url: str, tmp_path: Path) -> None:
    env = {"EMBER_DATABASE_URL": database_url, "EMBER_HOME": str(tmp_path)}
    upgraded = invoke("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {Migrator(Database(database_url)).head()}" in upgraded.output

    database = Database(database_url)
    collections = SqlCollectionRepository(database)
    collections.create("before-backup")
    note = tmp_path / "note.txt"
    note.write_text("Magma rises through the crust and erupts as lava.")
    ingested = invoke("ingest", str(note), "-C", "before-backup", env=env)
    assert ingested.exit_code == 0, ingested.output
    backup = tmp_path / "ember.bak"
    made = invoke("db", "backup", str(backup), env=env)
    assert made.exit_code == 0, made.output
    assert backup.is_file()

    collections.create("after-backup")
    declined = invoke("db", "restore", str(backup), env=env, input="n\n")
    assert declined.exit_code == 1
    assert {c.name for c in collections.list()} == {"before-backup", "after-backup"}

    restored = invoke("db", "restore", str(backup), "--yes", env=env)
    assert restored.exit_code == 0, restored.output
    assert [c.name for c in collections.list()] == ["before-backup"]
    assert "rebuilt 1 vector index (1 vectors) from the restored tables" in restored.output
    database.dispose()


@pytest.mark.slow
def test_restore_of_garbage_fails_with_its_code(database_url: str, tmp_path: Path) -> None:
    env = {"EMBER_DATABASE_URL": database_url, "EMBER_HOME": str(tmp_path)}
    assert invoke("db", "upgrade", env=env).exit_code == 0
    garbage = tmp_path / "garbage"
    garbage.write_text("not a backup")
    result = invoke("db", "restore", str(garbage), "--yes", env=env)
    assert result.exit_code == 1
    assert "error[backup_invalid]" in result.output


class ReadyAPI(ThreadedFakeServer):
    """What ``ember status`` asks of the API: ``GET /ready`` answering 200, on 127.0.0.1."""

    def __init__(self) -> None:
        self._init_server("ready API")

    def _asgi(self) -> FastAPI:
        api = FastAPI()
        api.add_api_route("/ready", lambda: {"status": "ready"}, methods=["GET"])
        return api


@pytest.fixture
def ready_api() -> Iterator[ReadyAPI]:
    with ReadyAPI() as api:
        yield api


def _status_rows(*args: str, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    result = invoke("status", *args, env={**env, "COLUMNS": "300"})
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    return result.exit_code, rows


def _status_env(home: Path) -> dict[str, str]:
    """An ember home whose config's port has nothing listening, and no Ray."""
    return {
        "EMBER_HOME": str(home),
        "EMBER_RAY_ADDRESS": f"127.0.0.1:{free_port()}",
        "EMBER_SERVER_PORT": str(free_port()),
    }


def test_status_finds_the_api_where_ember_up_serves(tmp_path: Path, ready_api: ReadyAPI) -> None:
    """``ember up --port P`` records where it serves; ``ember status`` (config port unchanged)
    checks the API there, and after a clean stop the record is gone."""
    env = _status_env(tmp_path / "home")
    served = load_config(None, {**env, "EMBER_SERVER_PORT": str(ready_api.port)})
    with serving_recorded(served) as url:
        assert url == f"http://127.0.0.1:{ready_api.port}"
        record = json.loads(serve_record(served).read_text())
        assert record == {"url": url, "pid": os.getpid()}
        code, rows = _status_rows(env=env)
        assert code == 1, "Ray and the database are still down"
        assert rows["api"].split()[3] == "ok", rows["api"]
        assert f"127.0.0.1:{ready_api.port}/ready" in rows["api"]
    assert not serve_record(served).exists()
    code, rows = _status_rows(env=env)
    assert "down" in rows["api"] and f":{env['EMBER_SERVER_PORT']}/ready" in rows["api"]


def test_status_reads_a_record_written_by_hand(tmp_path: Path, ready_api: ReadyAPI) -> None:
    env = _status_env(tmp_path / "home")
    record = tmp_path / "home" / "run" / "serve.json"
    record.parent.mkdir(parents=True)
    url = f"http://127.0.0.1:{ready_api.port}"
    record.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    _, rows = _status_rows(env=env)
    assert rows["api"].split()[3] == "ok" and f"{url}/ready" in rows["api"]


def test_status_ignores_the_record_of_an_ember_that_is_gone(
    tmp_path: Path, ready_api: ReadyAPI
) -> None:
    env = _status_env(tmp_path / "home")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = tmp_path / "home" / "run" / "serve.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"url": f"http://127.0.0.1:{ready_api.port}", "pid": gone.pid}))
    _, rows = _status_rows(env=env)
    assert "down" in rows["api"] and f":{env['EMBER_SERVER_PORT']}/ready" in rows["api"]


def test_status_checks_the_api_at_url(tmp_path: Path, ready_api: ReadyAPI) -> None:
    env = _status_env(tmp_path / "home")
    url = f"http://127.0.0.1:{ready_api.port}"
    code, rows = _status_rows("--url", f"{url}/", env=env)
    assert code == 1
    assert rows["api"].split()[3] == "ok" and f"{url}/ready" in rows["api"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "127.0.0.1:8000", "http://"])
def test_status_refuses_a_url_that_is_not_http(tmp_path: Path, url: str) -> None:
    result = invoke("status", "--url", url, env=_status_env(tmp_path / "home"))
    assert result.exit_code == 2 and "--url" in result.output
