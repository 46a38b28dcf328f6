"""``ember up``'s terminal output, with a stand-in for the Ray runtime: the summary names
Ray's log folder and comes last, and the runtime is asked to keep Ray's lines out."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

import ember.cluster
from ember.cli import app
from ember.cluster.runtime import ClusterInfo, quiet_auth_notice
from ember.config import EmberConfig
from tests.support.postgres import free_port

LOG_DIR = "/tmp/ray/session_2026-01-01_00-00-00_000000_1/logs"


class StandInRuntime:
    """Starts and deploys nothing; deploying sends this process SIGINT, so ``up`` stops
    right after its summary."""

    made: ClassVar[list[StandInRuntime]] = []

    def __init__(self, config: EmberConfig, *, quiet: bool = False) -> None:
        self.config = config
        self.quiet = quiet
        self.stopped = False
        self.made.append(self)

    def start(self) -> ClusterInfo:
        return ClusterInfo("10.0.0.1:6379", "http://127.0.0.1:8265", True, log_dir=LOG_DIR)

    def deploy(self) -> str:
        signal.raise_signal(signal.SIGINT)
        server = self.config.server
        return f"http://{server.host}:{server.port}"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[StandInRuntime]]:
    """:class:`StandInRuntime` as ``ember.cluster.Runtime``; the signal handlers ``up``
    installs are put back afterwards."""
    monkeypatch.setattr(ember.cluster, "Runtime", StandInRuntime, raising=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    StandInRuntime.made.clear()
    try:
        yield StandInRuntime.made
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def test_up_keeps_rays_lines_out_and_ends_with_its_summary(
    tmp_path: Path, stand_in: list[StandInRuntime]
) -> None:
    port = free_port()
    env = {"EMBER_HOME": str(tmp_path), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["up", "--port", str(port)], env=env)
    assert result.exit_code == 0, result.output
    (runtime,) = stand_in
    assert runtime.quiet and runtime.stopped

    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in lines[1:-3]}
    assert list(rows) == [
        "UI",
        "API",
        "OpenAPI",
        "Docs",
        "Ready",
        "Auth",
        "Ray",
        "Dashboard",
        "Logs",
    ]
    assert rows["API"] == f"http://127.0.0.1:{port}"
    assert rows["UI"] == f"http://127.0.0.1:{port}/"
    assert rows["Logs"].startswith(f"{LOG_DIR}  ")
    assert lines[-3:] == ["ember is up. Press Ctrl-C to stop.", "stopping…", "stopped."]


def test_quiet_drops_rays_token_auth_notice_but_keeps_its_warning() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    ray_auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    keep = Keep()
    ray_auth.addHandler(keep)
    try:
        quiet_auth_notice()
        quiet_auth_notice()
        ray_auth.warning("Token authentication is enabled for this Ray cluster. Set ...")
        ray_auth.warning("Token authentication is disabled for this Ray cluster. Anyone ...")
    finally:
        ray_auth.removeHandler(keep)
    assert records == ["Token authentication is disabled for this Ray cluster. Anyone ..."]
