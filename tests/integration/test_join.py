"""`ember up` joins an existing cluster and leaves it running when it stops."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import ray
from ray import serve
from ray.cluster_utils import Cluster

from ember.cluster import Runtime
from ember.config import load_config
from ember.storage import Database, Migrator
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow


def test_join_existing_cluster_then_leave_it_running(tmp_path: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        config = load_config(
            None,
            {
                "EMBER_HOME": str(tmp_path),
                "EMBER_SERVER_PORT": str(free_port()),
                "EMBER_RAY_ADDRESS": cluster.address,
            },
        )
        database = Database.from_config(config)
        Migrator(database).upgrade()
        database.dispose()

        runtime = Runtime(config)
        info = runtime.start()
        assert not info.started_here
        assert info.dashboard_url is None or info.dashboard_url.startswith("http://")
        url = runtime.deploy()
        assert httpx.get(f"{url}/ready").status_code == 200
        runtime.stop()

        ray.init(address=cluster.address)
        try:
            assert ray.cluster_resources()["CPU"] == 2
            assert "ember" not in serve.status().applications
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()
