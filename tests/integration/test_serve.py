"""The Serve app on a real local Ray cluster, over real HTTP on a free port."""

from __future__ import annotations

import glob
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember.config import EmberConfig
from ember.storage import Database
from tests.support.cluster import ember_config, running_ember

pytestmark = pytest.mark.slow

LOG_DIRS: list[str] = []
"""The Ray log folder of the module's cluster (not ``session_latest``: another cluster on the
machine may have moved that link)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmberConfig]]:
    home = tmp_path_factory.mktemp("home")
    config = ember_config(home, EMBER_RAY_NUM_CPUS="2", EMBER_RAY_DASHBOARD="false")
    with running_ember(config) as ember:
        assert ember.info.started_here and ember.info.log_dir
        LOG_DIRS.append(ember.info.log_dir)
        yield ember.url, config
        LOG_DIRS.remove(ember.info.log_dir)


def test_health_and_ready(served: tuple[str, EmberConfig]) -> None:
    url, _ = served
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    ready = httpx.get(f"{url}/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["ray"]["ok"]
    assert "1 node(s) alive" in checks["ray"]["detail"]


def test_openapi_is_published(served: tuple[str, EmberConfig]) -> None:
    url, _ = served
    spec = httpx.get(f"{url}/openapi.json").json()
    assert spec["info"]["title"] == "ember"
    assert "/ready" in spec["paths"]


def test_request_id_end_to_end(served: tuple[str, EmberConfig]) -> None:
    url, _ = served
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{url}/collections", json={"name": "BAD NAME"}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get_list("x-request-id") == [request_id]
    body = response.json()
    assert body["request_id"] == request_id
    assert body["errors"][0]["path"] == "body.name"
    assert _log_line_with(request_id, LOG_DIRS[0])["status"] == 422


def test_request_id_is_generated_when_absent(served: tuple[str, EmberConfig]) -> None:
    url, _ = served
    response = httpx.get(f"{url}/collections/missing")
    assert response.status_code == 404
    [request_id] = response.headers.get_list("x-request-id")
    assert response.json()["request_id"] == request_id
    assert response.json()["code"] == "collection_not_found"


def test_collections_persist_in_the_database(served: tuple[str, EmberConfig]) -> None:
    url, config = served
    assert httpx.post(f"{url}/collections", json={"name": "served"}).status_code == 201
    database = Database.from_config(config)
    from ember.storage import SqlCollectionRepository

    assert SqlCollectionRepository(database).get("served").name == "served"
    database.dispose()


def _log_line_with(request_id: str, log_dir: str, timeout_s: float = 15.0) -> dict:
    """The JSON access-log line a replica wrote for ``request_id`` (Ray's log files)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in glob.glob(f"{log_dir}/*.err"):
            for line in Path(path).read_text(errors="replace").splitlines():
                if request_id in line and line.lstrip().startswith("{"):
                    entry = json.loads(line[line.index("{") :])
                    if entry.get("logger") == "ember.access":
                        assert {"ts", "level", "service", "requestId"} <= entry.keys()
                        assert entry["requestId"] == request_id
                        return entry
        time.sleep(0.2)
    raise AssertionError(f"no access-log line with {request_id}")


def test_status_command_sees_the_running_cluster(served: tuple[str, EmberConfig]) -> None:
    import os
    import subprocess
    import sys

    _, config = served
    env = dict(
        os.environ,
        EMBER_HOME=str(config.home_dir),
        EMBER_SERVER_PORT=str(config.server.port),
        COLUMNS="200",
    )
    done = subprocess.run(
        [sys.executable, "-m", "ember", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│")}
    assert "ok" in rows["database"] and "ok" in rows["ray"] and "ok" in rows["api"]
    assert "ember=RUNNING" in rows["serve"]


def test_the_front_door_holds_behind_the_serve_proxy(served: tuple[str, EmberConfig]) -> None:
    url, _ = served
    rebound = httpx.get(f"{url}/jobs", headers={"Host": "attacker.example"})
    assert rebound.status_code == 421 and rebound.json()["code"] == "host_not_allowed"
    page = httpx.post(
        f"{url}/collections", json={"name": "csrf"}, headers={"Origin": "http://evil.example"}
    )
    assert page.status_code == 403 and page.json()["code"] == "origin_not_allowed"
    assert httpx.get(f"{url}/collections/csrf").status_code == 404
