"""The FastAPI application: plain ASGI, no Ray. :mod:`ember.serve_app.deployment` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ember import __version__
from ember.serve_app.auth import document_security
from ember.serve_app.collections import collections_router
from ember.serve_app.compat.ollama import ollama_router
from ember.serve_app.compat.openai import openai_router
from ember.serve_app.context import AppContext
from ember.serve_app.jobs import jobs_router
from ember.serve_app.memory import memory_router
from ember.serve_app.metrics import metrics_router
from ember.serve_app.middleware import RequestContextMiddleware
from ember.serve_app.problems import install_problem_handlers
from ember.serve_app.system import system_router

__all__ = ["create_app"]


def create_app(context: AppContext, *, echo_request_id: bool = True) -> FastAPI:
    """Build the API over ``context``. OpenAPI is published at ``/openapi.json``.

    Every route but the probes and the API docs needs a scope (:mod:`ember.serve_app.auth`);
    whether tokens are required is logged here, once per app. When the app shuts down the
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
    )
    install_problem_handlers(app)
    app.include_router(system_router(context.readiness))
    app.include_router(collections_router(context.collections, context.audit))
    app.include_router(memory_router(context.memory))
    app.include_router(jobs_router(context.jobs))
    app.include_router(metrics_router(context.jobs))
    app.include_router(openai_router(context.router, context.models))
    app.include_router(ollama_router(context.router, context.models))
    app.add_middleware(RequestContextMiddleware, echo=echo_request_id)
    document_security(app)
    app.state.context = context
    app.state.authenticator = context.auth
    context.auth.log_mode()
    return app
