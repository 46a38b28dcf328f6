"""Config: YAML plus EMBER_* overrides, and errors that name file, field and problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ember.config import EmberConfig, environment_variables, load_config
from ember.errors import ConfigError
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ember.yaml"
    path.write_text(text)
    return path


def test_default_yaml_equals_the_model_defaults() -> None:
    loaded = load_config(REPO / "configs" / "default.yaml", {})
    assert loaded == EmberConfig()


def test_every_config_file_in_configs_is_valid() -> None:
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert files
    for path in files:
        load_config(path, {})


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9000\ndatabase:\n  pool_size: 3\n")
    config = load_config(
        path,
        {
            "EMBER_SERVER_PORT": "9100",
            "EMBER_HOME": str(tmp_path),
            "UNRELATED": "x",
            "EMBER_SERVE_MAX_ONGOING_REQUESTS": "7",
            "EMBER_LOGGING_FORMAT": "text",
        },
    )
    assert config.server.port == 9100
    assert config.database.pool_size == 3
    assert config.serve.max_ongoing_requests == 7
    assert config.logging.format == "text"
    assert config.home_dir == tmp_path.resolve()
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'ember.db'}"


def test_ember_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9001\n")
    assert load_config(None, {"EMBER_CONFIG": str(path)}).server.port == 9001


def test_database_url_from_environment() -> None:
    url = "postgresql+psycopg://u@h:5432/db"
    assert load_config(None, {"EMBER_DATABASE_URL": url}).database_url == url


def test_empty_environment_value_means_unset() -> None:
    assert load_config(None, {"EMBER_RAY_ADDRESS": ""}).ray.address is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 1\n", "server.prot: unknown key"),
        ("server:\n  port: abc\n", "server.port: Input should be a valid integer"),
        ("server:\n  port: 70000\n", "server.port: Input should be less than or equal to 65535"),
        ("bogus: 1\n", "bogus: unknown key"),
        ("logging:\n  level: LOUD\n", "logging.level: Input should be"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("server: [1, 2\n", "invalid YAML"),
    ],
)
def test_bad_file_names_file_field_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(path) in caught.value.detail
    assert expected in caught.value.detail
    assert caught.value.code == "config_invalid"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment variable EMBER_SERVER_PORT: server\.port"):
        load_config(None, {"EMBER_SERVER_PORT": "eighty"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", {})


def test_environment_variable_names_cover_every_leaf() -> None:
    names = environment_variables()
    assert names["EMBER_HOME"] == ("home",)
    assert names["EMBER_DATABASE_URL"] == ("database", "url")
    assert names["EMBER_SERVE_MAX_ONGOING_REQUESTS"] == ("serve", "max_ongoing_requests")
    leaves = sum(
        len(type(section).model_fields) if hasattr(type(section), "model_fields") else 1
        for section in EmberConfig().__dict__.values()
    )
    assert len(names) == leaves


@pytest.mark.slow
@pytest.mark.parametrize("command", [["up"], ["status"], ["db", "upgrade"]])
def test_bad_config_stops_startup_with_exit_2_and_no_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    path = write(tmp_path, yaml.safe_dump({"server": {"port": "x"}, "extra": True}))
    done = subprocess.run(
        [sys.executable, "-m", "ember", *command, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("error[config_invalid]: ")
    assert str(path) in done.stderr
    assert "server.port" in done.stderr and "extra: unknown key" in done.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"EMBER_EMBEDDINGS_PROVIDER": "openai", "EMBER_EMBEDDINGS_MODEL": "text-embedding"},
            "EMBER_EMBEDDINGS_MODEL, EMBER_EMBEDDINGS_PROVIDER: embeddings: Value error, model and "
            "dim are required when provider is openai",
        ),
        (
            {"EMBER_MEMORY_VECTOR_BACKEND": "weaviate"},
            "defaults with EMBER_MEMORY_VECTOR_BACKEND: memory: Value error, weaviate_url is "
            "required when vector_backend is weaviate",
        ),
        (
            {"EMBER_JOBS_RENEW_INTERVAL_S": "10"},
            "jobs: Value error, renew_interval_s (10) must be below lease_ttl_s (10)",
        ),
    ],
)
def test_cross_field_rules_fail_at_load(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ)
    assert caught.value.code == "config_invalid"
    assert expected in caught.value.detail


def test_every_pool_has_the_one_shape() -> None:
    config = load_config(
        None,
        {
            "EMBER_JOBS_WORKERS_MIN": "0",
            "EMBER_JOBS_SLOTS_PER_WORKER": "3",
            "EMBER_EMBEDDINGS_WORKER_NUM_GPUS": "0.5",
            "EMBER_MODELS_REPLICAS_MAX": "3",
            "EMBER_SERVE_AUTOSCALING": "true",
            "EMBER_SERVE_MAX_REPLICAS": "5",
        },
    )
    assert (config.jobs.scaling.min_size, config.jobs.scaling.target_per_worker) == (0, 3)
    assert config.embeddings.scaling.num_gpus == 0.5
    assert (config.models.scaling.max_size, config.models.scaling.num_gpus) == (3, 1.0)
    assert (config.serve.scaling.min_size, config.serve.scaling.max_size) == (1, 5)
    fixed = load_config(None, {"EMBER_SERVE_NUM_REPLICAS": "2"}).serve.scaling
    assert (fixed.min_size, fixed.max_size, fixed.fixed) == (2, 2, True)


def test_a_pool_cannot_be_smaller_at_most_than_at_least() -> None:
    from pydantic import ValidationError

    from ember.config import PoolConfig

    with pytest.raises(ValidationError, match="max_size"):
        PoolConfig(min_size=3, max_size=2, num_cpus=1, target_per_worker=1, cooldown_s=0)


def test_front_door_lists_from_the_environment_are_checked() -> None:
    config = load_config(
        None,
        {
            "EMBER_SERVER_ALLOWED_HOSTS": "Ember.example, [::1]:8443",
            "EMBER_SERVER_ALLOWED_ORIGINS": '["https://App.example:8443"]',
        },
    )
    assert config.server.allowed_hosts == ["ember.example", "[::1]:8443"]
    assert config.server.allowed_origins == ["https://app.example:8443"]
    with pytest.raises(ConfigError, match=r"EMBER_SERVER_ALLOWED_HOSTS.*'a b' is not a host"):
        load_config(None, {"EMBER_SERVER_ALLOWED_HOSTS": "a b"})
    with pytest.raises(ConfigError, match="'http://x/path' is not an origin"):
        load_config(None, {"EMBER_SERVER_ALLOWED_ORIGINS": "http://x/path"})
