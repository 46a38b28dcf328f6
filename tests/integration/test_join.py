"""`ember up` joins an existing cluster and leaves it running when it stops."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

from tests.support.cluster import ember_config, ray_cluster, running_ember

pytestmark = pytest.mark.slow


def test_join_existing_cluster_then_leave_it_running(tmp_path: Path) -> None:
    with ray_cluster(2) as cluster:
        config = ember_config(tmp_path, EMBER_RAY_ADDRESS=cluster.address)
        with running_ember(config) as ember:
            info = ember.info
            assert not info.started_here
            assert info.dashboard_url is None or info.dashboard_url.startswith("http://")
            assert info.log_dir == str(Path(cluster.head_node.get_session_dir_path(), "logs"))
            assert httpx.get(f"{ember.url}/ready").status_code == 200

        ray.init(address=cluster.address)
        try:
            assert ray.cluster_resources()["CPU"] == 2
            assert "ember" not in serve.status().applications
        finally:
            ray.shutdown()
