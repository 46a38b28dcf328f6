"""``/health`` (the process is alive) and ``/ready`` (every readiness check passes).

``/ready`` is public (probes carry no token), so what it tells an anonymous caller is only
each check's name and ``ok``/``failing``: a check's detail can hold a driver's message, a
database or upstream address. A caller holding ``admin`` (a token with it, or the loopback
dev bypass) gets the details.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ember import __version__
from ember.auth import Authenticator, Scope
from ember.errors import EmberError, NotReady
from ember.serve_app.auth import bearer_token, is_loopback, require
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


_ADMIN = require(Scope.ADMIN)


async def _shows_details(request: Request) -> bool:
    """Whether the caller holds ``admin``. A presented token is checked as on any route (a
    bad one counts against its address's limit); without one, only the loopback dev bypass
    can hold ``admin``, and a probe without credentials never counts as a refused request."""
    try:
        if bearer_token(request) is not None:
            await _ADMIN(request)
            return True
        if not is_loopback(request.client.host if request.client else None):
            return False
        authenticator: Authenticator = request.app.state.authenticator
        principal = await run_in_threadpool(authenticator.authenticate, None, loopback=True)
    except EmberError:
        return False
    return principal.allows(Scope.ADMIN)


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
        """Readiness: 200 when every check passes, else 503 naming the failing checks. Each
        check's detail is shown to callers holding ``admin`` only (else ``ok``/``failing``)."""
        results = await readiness.run()
        if await _shows_details(request):
            details = {name: result.detail for name, result in results.items()}
        else:
            details = {name: "ok" if result.ok else "failing" for name, result in results.items()}
        checks = {name: CheckOut(ok=r.ok, detail=details[name]) for name, r in results.items()}
        failing = [name for name, result in results.items() if not result.ok]
        if failing:
            error = NotReady(
                "not ready: " + "; ".join(f"{name}: {details[name]}" for name in failing),
                extra={"checks": {name: check.model_dump() for name, check in checks.items()}},
            )
            return problem_response(error, request.url.path)
        return Ready(status="ready", checks=checks)

    return router
