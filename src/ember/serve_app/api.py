"""The FastAPI application: plain ASGI, no Ray. :mod:`ember.serve_app.deployment` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ember import __version__
from ember.memory.documents import DocumentLimits
from ember.serve_app.agents import agents_router
from ember.serve_app.api_docs import api_docs_router
from ember.serve_app.auth import document_security
from ember.serve_app.collections import collections_router
from ember.serve_app.compat.ollama import ollama_router
from ember.serve_app.compat.openai import openai_router
from ember.serve_app.context import AppContext
from ember.serve_app.guards import install_front_door
from ember.serve_app.jobs import jobs_router
from ember.serve_app.memory import memory_router
from ember.serve_app.metrics import metrics_router
from ember.serve_app.middleware import RequestContextMiddleware
from ember.serve_app.openapi import document_problems
from ember.serve_app.problems import install_problem_handlers
from ember.serve_app.providers import providers_router
from ember.serve_app.streams import StreamSlots
from ember.serve_app.system import system_router
from ember.serve_app.tokens import tokens_router
from ember.serve_app.ui import ui_router
from ember.serve_app.vms import vms_router

__all__ = ["create_app"]


def create_app(context: AppContext, *, echo_request_id: bool = True) -> FastAPI:
    """Build the API over ``context``. OpenAPI is published at ``/openapi.json``.

    Every request passes the front door first (:mod:`ember.serve_app.guards`: ``Host``,
    ``Origin``, body size); every route but the probes, the API docs and the web UI's page
    and assets needs a scope
    (:mod:`ember.serve_app.auth`); how requests are authenticated is logged here, once per
    app. When the app shuts down the
    router writes its queued usage rows and closes its providers.

    :param echo_request_id: add ``X-Request-ID`` to responses; off behind a proxy that does.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await context.router.aclose()

    app = FastAPI(
        title="ember",
        version=__version__,
        description="A local-first AI compute cluster on Ray.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    server, memory = context.config.server, context.config.memory
    streams = StreamSlots(server.max_streams_per_principal)
    limits = DocumentLimits(
        memory.max_document_bytes, memory.max_metadata_bytes, memory.max_beir_lines
    )
    install_problem_handlers(app)
    app.include_router(api_docs_router(app))
    app.include_router(ui_router())
    app.include_router(system_router(context.readiness))
    app.include_router(
        collections_router(context.collections, context.audit, context.memory.embedder.model_id)
    )
    app.include_router(tokens_router(context.tokens, context.audit))
    app.include_router(
        agents_router(
            context.agents, context.agent_runs, context.artifacts, context.jobs, context.audit
        )
    )
    app.include_router(vms_router(context.vms))
    app.include_router(memory_router(context.memory, limits, audit=context.audit))
    app.include_router(
        jobs_router(
            context.jobs,
            streams=streams,
            max_input_bytes=server.max_job_input_bytes,
            traces=context.tracing.store,
        )
    )
    app.include_router(
        metrics_router(
            context.jobs,
            usage_dropped=lambda: context.router.usage_dropped,
            cache_s=server.probe_cache_s,
            families=context.metrics_text,
        )
    )
    app.include_router(providers_router(context.config.providers, context.router, context.database))
    app.include_router(openai_router(context.router, context.models, streams=streams))
    app.include_router(ollama_router(context.router, context.models, streams=streams))
    install_front_door(app, server)
    app.add_middleware(
        RequestContextMiddleware,
        echo=echo_request_id,
        tracer=context.tracing.tracer("ember.serve_app"),
        metrics=context.metrics,
    )
    document_security(app)
    document_problems(app)
    app.state.context = context
    app.state.authenticator = context.auth
    context.auth.log_mode()
    return app
