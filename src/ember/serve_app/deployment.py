"""The Ray Serve shell around :func:`ember.serve_app.api.create_app`.

The app is built inside each replica (Serve calls the builder there), so database engines and
pools are per replica and never pickled. Once built, everything the replica has allocated is
moved out of the garbage collector's view (``gc.freeze``), so later full collections scan
only what requests allocate: fewer long pauses in the latency tail. Replicas take a
fractional CPU and an explicit ``max_ongoing_requests``. Serve's proxy generates, forwards
and echoes ``X-Request-ID``; the app reads it from the forwarded header and does not echo it
a second time. The replica count is fixed (``serve.num_replicas``) or left to Serve's
autoscaler (``serve.autoscaling``).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from starlette.concurrency import run_in_threadpool

from ember.actors.builder import JobSystem, start_job_system, start_model_registry
from ember.actors.cluster_services import cluster_services
from ember.actors.names import DISPATCHER, HUB, NAMESPACE
from ember.config import EmberConfig, ServeConfig, load_config
from ember.observability import configure_logging
from ember.serve_app.api import create_app
from ember.serve_app.context import build_context
from ember.serve_app.readiness import CheckResult
from ember.services import Services, hosted_providers
from ember.storage import Migrator

__all__ = [
    "APP_NAME",
    "INGRESS_NAME",
    "Booted",
    "app",
    "boot",
    "build_application",
    "replica_options",
]

APP_NAME = "ember"
INGRESS_NAME = "api"


async def _ray_ready() -> CheckResult:
    import ray

    if not ray.is_initialized():
        return CheckResult(False, "not connected to Ray")
    nodes = await run_in_threadpool(ray.nodes)
    alive = sum(1 for node in nodes if node.get("Alive"))
    return CheckResult(alive > 0, f"{alive} node(s) alive")


async def _jobs_ready() -> CheckResult:
    import ray
    from ray.exceptions import RayActorError

    try:
        hub: Any = ray.get_actor(HUB, namespace=NAMESPACE)
        dispatcher: Any = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
        await hub.stats.remote()
        stats: dict[str, Any] = await dispatcher.stats.remote()
    except ValueError:
        return CheckResult(False, "the job system actors are not running")
    except RayActorError as exc:
        return CheckResult(False, f"a job system actor is restarting: {type(exc).__name__}")
    workers = sum(len(owners) for owners in stats["workers"].values())
    return CheckResult(True, f"{workers} worker(s), queue depth {stats['queue_depth']}")


def replica_options(serve_config: ServeConfig) -> dict[str, Any]:
    """How many ingress replicas: Serve's ``autoscaling_config`` when ``serve.autoscaling``
    is on (Serve refuses it together with a fixed count), else ``num_replicas``."""
    pool = serve_config.scaling
    if not serve_config.autoscaling:
        return {"num_replicas": pool.min_size}
    return {
        "autoscaling_config": {
            "min_replicas": pool.min_size,
            "max_replicas": pool.max_size,
            "target_ongoing_requests": pool.target_per_worker,
        }
    }


def build_application(config: EmberConfig) -> Application:
    """The Serve application for ``config``, ready for ``serve.run``."""

    def app_builder() -> FastAPI:
        configure_logging("ember-api", config.logging.level, config.logging.format)
        context = build_context(config, services=cluster_services(config, service="ember-api"))
        context.readiness.add("ray", _ray_ready)
        context.readiness.add("jobs", _jobs_ready)
        app = create_app(context, echo_request_id=False)
        gc.collect()
        gc.freeze()
        return app

    ingress: Any = serve.deployment(
        serve.ingress(app_builder)(),
        name=INGRESS_NAME,
        **replica_options(config.serve),
        max_ongoing_requests=config.serve.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.serve.scaling.num_cpus},
        logging_config={"enable_access_log": False, "log_level": config.logging.level},
    )
    application: Application = ingress.bind()
    return application


@dataclass(frozen=True)
class Booted:
    """What :func:`boot` started: the job system, the model registry (``None`` without a
    ``llamacpp`` provider), and the Serve application to run."""

    jobs: JobSystem
    models: Any
    application: Application


def boot(config: EmberConfig, *, detached: bool = False) -> Booted:
    """ember's one boot sequence on a connected cluster, for ``ember up`` and for Serve config
    files alike: migrate the database, start the job system (EventHub, JobDispatcher) and,
    when a ``llamacpp`` provider is configured, the model registry (or find the running
    ones), then build the Serve application.

    ``detached`` actors outlive the process that starts them (a Serve config's application
    builder runs in a task that ends right after); otherwise they die with it.
    """
    services = Services.build(config)
    try:
        Migrator(services.database).upgrade()
    finally:
        services.close()
    jobs = start_job_system(config, detached=detached)
    models = start_model_registry(config, detached=detached) if hosted_providers(config) else None
    return Booted(jobs, models, build_application(config))


def app(args: dict[str, str]) -> Application:
    """The application builder for Serve config files and KubeRay's ``serveConfigV2``
    (``import_path: ember.serve_app.deployment:app``).

    ``args["config"]`` names the YAML file (optional); ``EMBER_*`` variables apply on top, as
    for ``ember up``. Runs :func:`boot` with detached actors.
    """
    path = args.get("config")
    config = load_config(Path(path) if path else None, os.environ)
    return boot(config, detached=True).application
