"""``/health`` (the process is alive) and ``/ready`` (every readiness check passes)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ember import __version__
from ember.errors import NotReady
from ember.serve_app.problems import problem_response
from ember.serve_app.readiness import Readiness

__all__ = ["Health", "Ready", "system_router"]


class Health(BaseModel):
    status: str
    version: str


class CheckOut(BaseModel):
    ok: bool
    detail: str


class Ready(BaseModel):
    status: str
    checks: dict[str, CheckOut]


def system_router(readiness: Readiness) -> APIRouter:
    """Routes for liveness and readiness probes."""
    router = APIRouter(tags=["system"])

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        """Liveness: answers 200 while the process runs."""
        return Health(status="ok", version=__version__)

    @router.get(
        "/ready",
        response_model=Ready,
        responses={503: {"description": "a check failed (problem+json, code not_ready)"}},
    )
    async def ready(request: Request) -> Ready | JSONResponse:
        """Readiness: 200 when every check passes, else 503 naming the failing checks."""
        results = await readiness.run()
        checks = {name: CheckOut(ok=r.ok, detail=r.detail) for name, r in results.items()}
        failing = [name for name, result in results.items() if not result.ok]
        if failing:
            error = NotReady(
                "not ready: " + "; ".join(f"{name}: {results[name].detail}" for name in failing),
                extra={"checks": {name: check.model_dump() for name, check in checks.items()}},
            )
            return problem_response(error, request.url.path)
        return Ready(status="ready", checks=checks)

    return router
