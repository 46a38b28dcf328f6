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
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from starlette.concurrency import run_in_threadpool

from ember.config import EmberConfig, ServeConfig
from ember.observability import configure_logging
from ember.serve_app.api import create_app
from ember.serve_app.context import build_context
from ember.serve_app.readiness import CheckResult

__all__ = ["APP_NAME", "INGRESS_NAME", "app", "build_application", "replica_options"]

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

    from ember.actors.builder import DISPATCHER, HUB, NAMESPACE

    try:
        hub: Any = ray.get_actor(HUB, namespace=NAMESPACE)
        dispatcher: Any = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
        await hub.stats.remote()
        stats: dict[str, Any] = await dispatcher.stats.remote()
    except ValueError:
        return CheckResult(False, "the job system actors are not running")
    workers = sum(len(owners) for owners in stats["workers"].values())
    return CheckResult(True, f"{workers} worker(s), queue depth {stats['queue_depth']}")


def replica_options(serve_config: ServeConfig) -> dict[str, Any]:
    """How many ingress replicas: Serve's ``autoscaling_config`` when ``serve.autoscaling``
    is on (Serve refuses it together with a fixed count), else ``num_replicas``."""
    if not serve_config.autoscaling:
        return {"num_replicas": serve_config.num_replicas}
    return {
        "autoscaling_config": {
            "min_replicas": serve_config.min_replicas,
            "max_replicas": serve_config.max_replicas,
            "target_ongoing_requests": serve_config.target_ongoing_requests,
        }
    }


def build_application(config: EmberConfig) -> Application:
    """The Serve application for ``config``, ready for ``serve.run``."""

    def app_builder() -> FastAPI:
        configure_logging("ember-api", config.logging.level, config.logging.format)
        context = build_context(config)
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
        ray_actor_options={"num_cpus": config.serve.num_cpus},
        logging_config={"enable_access_log": False, "log_level": config.logging.level},
    )
    application: Application = ingress.bind()
    return application


def app(args: dict[str, str]) -> Application:
    """The application builder for Serve config files and KubeRay's ``serveConfigV2``
    (``import_path: ember.serve_app.deployment:app``).

    ``args["config"]`` names the YAML file (optional); ``EMBER_*`` variables apply on top, as
    for ``ember up``. Migrates the database, then starts the job system (and the model
    registry when a ``llamacpp`` provider is configured) as detached actors, since Serve runs
    this builder in a task that ends right after.
    """
    import os
    from pathlib import Path

    from ember.actors.builder import start_job_system, start_model_registry
    from ember.config import load_config
    from ember.providers.factory import hosted_providers
    from ember.storage import Database, Migrator

    path = args.get("config")
    config = load_config(Path(path) if path else None, os.environ)
    database = Database.from_config(config)
    try:
        Migrator(database).upgrade()
    finally:
        database.dispose()
    start_job_system(config, detached=True)
    if hosted_providers(config):
        start_model_registry(config, detached=True)
    return build_application(config)
