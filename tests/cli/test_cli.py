"""The ember command line: clear messages and exit codes, and the db commands for real."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember import __version__
from ember.cli import app
from ember.storage import Database, Migrator, SqlCollectionRepository
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
