"""The cluster manifests in ``configs/cluster/`` obey Ray's, KubeRay's and ember's rules.

Nothing here starts a cluster. The launcher YAML is checked as ``ray up`` checks it before it
calls AWS: the JSON schema in the ray wheel, then Ray's own config preparation and
validation. The ray wheel ships no KubeRay CRD schema, so the RayService is checked with a
strict model of the ``ray.io/v1`` fields it uses (below; names and enums follow KubeRay's
``ray-operator/apis/ray/v1`` types, v1.5 or newer, and the core/v1 pod fields it uses), and
its ``serveConfigV2`` with Serve's own config schema. Then both files are held to ember's own
names: settings and their values, the app name, route and port, the readiness route, the
image and the Ray version.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import tomllib
from pathlib import Path
from types import FunctionType
from typing import Any, Literal

import jsonschema
import pytest
import ray
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ember.config import CONFIG_ENV, environment_variables, load_config
from ember.config.models import ServerConfig
from ember.serve_app.readiness import Readiness
from ember.serve_app.system import system_router
from tests.conftest import REPO

CLUSTER = REPO / "configs" / "cluster"
LAUNCHER = CLUSTER / "ray-cluster.yaml"
RAYSERVICE = CLUSTER / "rayservice.yaml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
# Stands in for values that come from a secret store, so that the rest can be validated.
SECRET_STANDIN = {"EMBER_DATABASE_URL": "postgresql+psycopg://ember:secret@db.internal/ember"}
ENV_NAME = re.compile(r"\bEMBER_[A-Z0-9_]*[A-Z0-9]\b")


@functools.cache
def launcher() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(LAUNCHER.read_text())
    return data


@functools.cache
def rayservice() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RAYSERVICE.read_text())
    return data


@functools.cache
def serve_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    return data


def version() -> str:
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["version"])


# ---------------------------------------------------------------------------------------------
# A strict model of the KubeRay RayService fields the manifest uses. Unknown keys are errors,
# so a misspelled field fails here instead of being dropped by the API server.


class _Kube(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


class SecretKeyRef(_Kube):
    name: str
    key: str


class EnvVarSource(_Kube):
    secret_key_ref: SecretKeyRef


class EnvVar(_Kube):
    name: str
    value: StrictStr | None = None  # Kubernetes wants strings: `value: false` is an error
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def one_source(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"{self.name}: give exactly one of value and valueFrom")
        return self


Quantity = StrictStr | StrictInt


class Resources(_Kube):
    limits: dict[str, Quantity]
    requests: dict[str, Quantity] = Field(default_factory=dict)


class HttpGet(_Kube):
    path: str
    port: int | str


class Probe(_Kube):
    http_get: HttpGet
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3


class ContainerPort(_Kube):
    container_port: int
    name: str


class VolumeMount(_Kube):
    name: str
    mount_path: str


class Container(_Kube):
    name: str
    image: str
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    env: list[EnvVar] = Field(default_factory=list)
    resources: Resources
    ports: list[ContainerPort] = Field(default_factory=list)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    security_context: dict[str, Any] | None = None
    volume_mounts: list[VolumeMount] = Field(default_factory=list)


class PodSpec(_Kube):
    containers: list[Container] = Field(min_length=1)
    security_context: dict[str, Any] | None = None
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_Kube):
    spec: PodSpec


class HeadGroupSpec(_Kube):
    ray_start_params: dict[str, StrictStr]  # map[string]string in the CRD
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
    template: PodTemplate


class WorkerGroupSpec(_Kube):
    group_name: str
    replicas: int = 0
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(2147483647, ge=0)
    idle_timeout_seconds: int | None = None
    ray_start_params: dict[str, StrictStr]
    template: PodTemplate

    @model_validator(mode="after")
    def bounds(self) -> WorkerGroupSpec:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(f"{self.group_name}: need minReplicas <= replicas <= maxReplicas")
        return self


class AutoscalerOptions(_Kube):
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] | None = None
    idle_timeout_seconds: int | None = None


class AuthOptions(_Kube):
    mode: Literal["disabled", "token"]


class RayClusterSpec(_Kube):
    ray_version: str
    enable_in_tree_autoscaling: bool = False
    autoscaler_options: AutoscalerOptions | None = None
    auth_options: AuthOptions | None = None
    head_group_spec: HeadGroupSpec
    worker_group_specs: list[WorkerGroupSpec] = Field(default_factory=list)


class UpgradeStrategy(_Kube):
    type: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]


class RayServiceSpec(_Kube):
    serve_config_v2: str
    ray_cluster_config: RayClusterSpec
    upgrade_strategy: UpgradeStrategy | None = None


class ObjectMeta(_Kube):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class RayService(_Kube):
    api_version: Literal["ray.io/v1"]
    kind: Literal["RayService"]
    metadata: ObjectMeta
    spec: RayServiceSpec


@functools.cache
def service() -> RayService:
    return RayService.model_validate(rayservice())


def containers() -> list[Container]:
    cluster = service().spec.ray_cluster_config
    groups = [cluster.head_group_spec.template, *(g.template for g in cluster.worker_group_specs)]
    return [container for template in groups for container in template.spec.containers]


# ---------------------------------------------------------------------------------------------
# The launcher YAML.


def test_launcher_matches_the_schema_in_the_ray_wheel() -> None:
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(launcher()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_launcher_passes_rays_own_checks() -> None:
    from ray.autoscaler._private.docker import validate_docker_config
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(launcher())
    validate_config(prepared)
    validate_docker_config(prepared)


def test_node_types_and_worker_bounds() -> None:
    config = launcher()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is the CPU node"
    workers = {name: spec for name, spec in types.items() if name != config["head_node_type"]}
    gpu = {name: spec for name, spec in workers.items() if spec["resources"].get("GPU", 0) >= 1}
    assert gpu, "a worker node type must declare GPU resources"
    for name, spec in workers.items():
        assert 0 <= spec["min_workers"] <= spec["max_workers"] <= config["max_workers"], name
    assert any(spec["max_workers"] > spec["min_workers"] for spec in gpu.values()), "autoscaling"
    assert sum(spec["min_workers"] for spec in workers.values()) <= config["max_workers"]


def test_head_starts_ray_then_joins_it_with_ember() -> None:
    config = launcher()
    head = config["head_start_ray_commands"]
    ray_start = next(i for i, cmd in enumerate(head) if "ray start --head" in cmd)
    ember_up = next(i for i, cmd in enumerate(head) if re.search(r"\bember up\b", cmd))
    assert ray_start < ember_up
    assert re.search(r"\bRAY_ADDRESS=auto\b", head[ember_up])
    assert "--dashboard-host=127.0.0.1" in head[ray_start]
    workers = config["worker_start_ray_commands"]
    assert any("ray start --address=" in cmd for cmd in workers)
    assert not any("ember up" in cmd for cmd in workers), "only the head runs the driver"


def test_launcher_clears_the_image_entrypoint() -> None:
    # The launcher runs `docker run ... IMAGE bash`; with the image's ENTRYPOINT `ember`
    # that would be `ember bash`.
    assert '--entrypoint=""' in launcher()["docker"]["run_options"]
    assert 'ENTRYPOINT ["ember"]' in (REPO / "Dockerfile.ray").read_text()


# ---------------------------------------------------------------------------------------------
# The RayService.


def test_rayservice_matches_the_kuberay_model() -> None:
    assert service().spec.ray_cluster_config.enable_in_tree_autoscaling


def test_kuberay_model_rejects_what_the_api_server_would() -> None:
    good = rayservice()
    typo = json.loads(json.dumps(good))
    typo["spec"]["rayClusterConfig"]["enableInTreeAutoscalling"] = True
    unquoted = json.loads(json.dumps(good))
    unquoted["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-gpus"] = 0
    for bad in (typo, unquoted):
        with pytest.raises(ValidationError):
            RayService.model_validate(bad)


def test_serve_config_matches_serves_schema() -> None:
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    config = serve_config()
    ServeDeploySchema.model_validate(config)
    # Serve's models ignore unknown keys; a misspelled key would silently do nothing.
    assert set(config) <= set(ServeDeploySchema.model_fields)
    assert set(config["http_options"]) <= set(HTTPOptionsSchema.model_fields)
    for application in config["applications"]:
        assert set(application) <= set(ServeApplicationSchema.model_fields)
        for deployment in application.get("deployments", []):
            assert set(deployment) <= set(DeploymentSchema.model_fields)


def test_serve_app_uses_embers_names_and_port() -> None:
    from ember.serve_app.deployment import APP_NAME, INGRESS_NAME

    config = serve_config()
    (application,) = config["applications"]
    assert application["name"] == APP_NAME
    assert application["route_prefix"] == "/"
    assert {d["name"] for d in application.get("deployments", [])} <= {INGRESS_NAME}
    port = ServerConfig.model_fields["port"].default
    assert config["http_options"] == {"host": "0.0.0.0", "port": port}
    head = service().spec.ray_cluster_config.head_group_spec.template.spec.containers[0]
    assert {p.name: p.container_port for p in head.ports}["serve"] == port


def test_config_files_named_in_the_manifests_ship_in_the_image() -> None:
    assert "COPY --chown=ray:users configs/ ./configs/" in (REPO / "Dockerfile.ray").read_text()
    (application,) = serve_config()["applications"]
    paths = [application["args"]["config"]]
    paths += re.findall(r"--config (\S+)", " ".join(launcher()["head_start_ray_commands"]))
    assert paths
    for path in paths:
        assert path.startswith("/app/configs/"), path
        assert (REPO / path.removeprefix("/app/")).is_file(), path


def test_gpu_worker_group_autoscales() -> None:
    cluster = service().spec.ray_cluster_config
    head = cluster.head_group_spec
    assert head.ray_start_params.get("num-gpus") == "0"
    assert all("nvidia.com/gpu" not in c.resources.limits for c in head.template.spec.containers)
    gpu = [
        group
        for group in cluster.worker_group_specs
        if any(
            int(c.resources.limits.get("nvidia.com/gpu", 0)) >= 1
            for c in group.template.spec.containers
        )
    ]
    assert gpu, "a worker group must ask for nvidia.com/gpu"
    assert any(group.max_replicas > group.min_replicas for group in gpu)


def test_readiness_is_embers_ready_route_on_the_workers_only() -> None:
    routes = {getattr(route, "path", None) for route in system_router(Readiness()).routes}
    port = ServerConfig.model_fields["port"].default
    cluster = service().spec.ray_cluster_config
    for container in cluster.head_group_spec.template.spec.containers:
        # KubeRay deploys the app once the head is Ready: a probe that waits for the app
        # would deadlock.
        assert container.readiness_probe is None
    for group in cluster.worker_group_specs:
        for container in group.template.spec.containers:
            probe = container.readiness_probe
            assert probe is not None, group.group_name
            assert probe.http_get.path == "/ready" and "/ready" in routes
            assert probe.http_get.port == port
            assert container.liveness_probe is None, "liveness must not depend on the database"


def test_database_url_comes_from_a_secret() -> None:
    refs = set()
    for container in containers():
        (url,) = [env for env in container.env if env.name == "EMBER_DATABASE_URL"]
        assert url.value is None and url.value_from is not None, container.name
        refs.add((url.value_from.secret_key_ref.name, url.value_from.secret_key_ref.key))
    assert len(refs) == 1, "every pod reads the same secret"


def test_import_path_names_an_application_builder() -> None:
    (application,) = serve_config()["applications"]
    module_name, _, attribute = application["import_path"].partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    # What Serve accepts: a built Application, or a function of one argument (the args).
    assert isinstance(target, FunctionType)
    assert len(inspect.signature(target).parameters) == 1


# ---------------------------------------------------------------------------------------------
# Both files against ember.


def launcher_env() -> tuple[dict[str, str], set[str]]:
    """The ``-e NAME=VALUE`` settings, and the names read from the secret store."""
    docker = launcher()["docker"]
    options = docker["run_options"] + docker.get("worker_run_options", [])
    plain = {}
    for option in options:
        if match := re.fullmatch(r"-e (\w+)=(.*)", option):
            plain[match[1]] = match[2].strip("'\"")
    commands = " ".join(launcher()["initialization_commands"])
    secret = set(re.findall(r'echo "(\w+)=\$\(', commands))
    return plain, secret


def rayservice_env() -> tuple[dict[str, str], set[str]]:
    plain: dict[str, str] = {}
    secret: set[str] = set()
    for container in containers():
        for env in container.env:
            if env.value is not None:
                plain[env.name] = env.value
            else:
                secret.add(env.name)
    return plain, secret


ENVIRONMENTS = {"ray-cluster.yaml": launcher_env, "rayservice.yaml": rayservice_env}


@pytest.mark.parametrize("path", [LAUNCHER, RAYSERVICE, DEPLOY_DOC], ids=lambda p: p.name)
def test_every_ember_variable_named_is_a_setting(path: Path) -> None:
    known = set(environment_variables()) | {CONFIG_ENV}
    named = set(ENV_NAME.findall(path.read_text()))
    assert named, f"{path.name} names no EMBER_ variable"
    assert named <= known, f"not ember settings: {sorted(named - known)}"


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_settings_make_a_valid_cluster_config(name: str) -> None:
    plain, secret = ENVIRONMENTS[name]()
    assert "EMBER_DATABASE_URL" in secret and "EMBER_DATABASE_URL" not in plain
    env = {**plain, **{key: SECRET_STANDIN.get(key, "x") for key in secret}}
    config = load_config(None, env)
    assert config.database_url.startswith("postgresql")
    assert config.memory.vector_backend == "milvus"
    assert config.memory.milvus_uri and config.memory.milvus_uri.startswith("http")
    assert not config.auth.loopback_without_tokens


def images() -> dict[str, str]:
    docker = launcher()["docker"]
    found = {"launcher head": docker["head_image"], "launcher workers": docker["image"]}
    cluster = service().spec.ray_cluster_config
    found["rayservice head"] = cluster.head_group_spec.template.spec.containers[0].image
    for group in cluster.worker_group_specs:
        found[f"rayservice {group.group_name}"] = group.template.spec.containers[0].image
    return found


def test_images_are_embers_build() -> None:
    tag = re.search(
        r"docker build -f Dockerfile.ray -t ember:(\S+) \.", (REPO / "Dockerfile.ray").read_text()
    )
    assert tag and tag[1] == version(), "Dockerfile.ray's documented tag is ember:<version>"
    found = images()
    registries = set()
    for where, image in found.items():
        registry, _, name = image.rpartition("/")
        registries.add(registry)
        expected = f"ember:{version()}-gpu" if "head" not in where else f"ember:{version()}"
        assert name == expected, f"{where}: {image}"
    assert len(registries) == 1, "one registry for all images"


def test_ray_version_matches_the_image() -> None:
    base = re.search(r"ARG RAY_IMAGE_TAG=(\d+\.\d+\.\d+)-", (REPO / "Dockerfile.ray").read_text())
    assert base
    assert service().spec.ray_cluster_config.ray_version == base[1] == ray.__version__
