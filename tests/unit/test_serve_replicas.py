"""The ingress replica options: a fixed count, or Serve's autoscaling config (the integration
test in ``tests/integration/test_autoscaling.py`` checks Serve runs it)."""

from __future__ import annotations

import pytest

from ember.config import ServeConfig, load_config
from ember.errors import ConfigError
from ember.serve_app.deployment import build_application, replica_options


def test_a_fixed_count_by_default() -> None:
    assert replica_options(ServeConfig(num_replicas=3)) == {"num_replicas": 3}


def test_autoscaling_replaces_the_fixed_count() -> None:
    options = replica_options(
        ServeConfig(autoscaling=True, min_replicas=2, max_replicas=5, target_ongoing_requests=8)
    )
    assert options == {
        "autoscaling_config": {"min_replicas": 2, "max_replicas": 5, "target_ongoing_requests": 8}
    }


def test_the_bound_deployment_carries_the_autoscaling_config() -> None:
    config = load_config(None, {"EMBER_SERVE_AUTOSCALING": "true", "EMBER_SERVE_MAX_REPLICAS": "3"})
    deployment = build_application(config)._bound_deployment
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 3)
    assert scaling.target_ongoing_requests == 64.0
    fixed = build_application(load_config(None, {"EMBER_SERVE_NUM_REPLICAS": "2"}))
    assert fixed._bound_deployment._deployment_config.autoscaling_config is None
    assert fixed._bound_deployment.num_replicas == 2


def test_max_replicas_below_min_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"serve\.max_replicas: .*below min_replicas"):
        load_config(None, {"EMBER_SERVE_MIN_REPLICAS": "3", "EMBER_SERVE_MAX_REPLICAS": "2"})


def test_jobs_workers_max_below_min_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"jobs\.workers_max: .*below workers_min"):
        load_config(None, {"EMBER_JOBS_WORKERS_MIN": "3", "EMBER_JOBS_WORKERS_MAX": "2"})
