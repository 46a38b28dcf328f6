"""The FastAPI application: plain ASGI, no Ray. :mod:`ember.serve_app.deployment` serves it."""

from __future__ import annotations

from fastapi import FastAPI

from ember import __version__
from ember.serve_app.collections import collections_router
from ember.serve_app.context import AppContext
from ember.serve_app.memory import memory_router
from ember.serve_app.middleware import RequestContextMiddleware
from ember.serve_app.problems import install_problem_handlers
from ember.serve_app.system import system_router

__all__ = ["create_app"]


def create_app(context: AppContext, *, echo_request_id: bool = True) -> FastAPI:
    """Build the API over ``context``. OpenAPI is published at ``/openapi.json``.

    :param echo_request_id: add ``X-Request-ID`` to responses; off behind a proxy that does.
    """
    app = FastAPI(
        title="ember",
        version=__version__,
        description="A local-first AI compute cluster on Ray.",
    )
    install_problem_handlers(app)
    app.include_router(system_router(context.readiness))
    app.include_router(collections_router(context.collections))
    app.include_router(memory_router(context.memory))
    app.add_middleware(RequestContextMiddleware, echo=echo_request_id)
    app.state.context = context
    return app
