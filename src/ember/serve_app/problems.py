"""RFC 9457 problem+json rendering of ember's errors.

Every error a client sees has ``type``, ``title``, ``status``, ``detail``, ``code`` and
``request_id``, and ``trace_id`` when the request is traced; validation failures add
``errors``, a list of ``{path, message, type}``.
The error's ``headers`` (``WWW-Authenticate``, ``Retry-After``, ``Allow``) go with the response.
An event the job bus could not publish (:class:`~ember.jobs.runner.EventsLost`: the event hub
is gone or restarting) is answered ``service_unavailable``.
Stack traces never leave the server.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ember.errors import (
    EmberError,
    FieldError,
    ServiceUnavailable,
    ValidationFailed,
    error_for_status,
)
from ember.jobs.runner import EventsLost
from ember.observability import REQUEST_ID
from ember.observability.tracing import trace_id

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem_body", "problem_response"]

PROBLEM_JSON = "application/problem+json"


def problem_body(error: EmberError, instance: str | None = None) -> dict[str, Any]:
    """The problem+json document for ``error``."""
    body: dict[str, Any] = {
        "type": f"urn:ember:error:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "request_id": REQUEST_ID.get(),
    }
    traced = trace_id()
    if traced is not None:
        body["trace_id"] = traced
    if instance is not None:
        body["instance"] = instance
    if error.errors:
        body["errors"] = error.errors
    for key, value in error.extra.items():
        body.setdefault(key, value)
    return body


def problem_response(error: EmberError, instance: str | None = None) -> JSONResponse:
    """``error`` as a response with its status, headers and the problem+json media type."""
    return JSONResponse(
        problem_body(error, instance),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def problem_bytes(error: EmberError, instance: str | None = None) -> bytes:
    """``error`` as an encoded problem+json document (for raw ASGI senders)."""
    return json.dumps(problem_body(error, instance)).encode()


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    found: list[FieldError] = []
    for item in exc.errors():
        path = ".".join(str(part) for part in item.get("loc", ()))
        found.append({"path": path, "message": str(item.get("msg", "")), "type": item["type"]})
    return found


def install_problem_handlers(app: FastAPI) -> None:
    """Make ``app`` answer every ember, validation and routing error with problem+json."""

    async def ember_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EmberError)
        return problem_response(exc, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
        return problem_response(ValidationFailed(detail, errors=errors), request.url.path)

    async def events_lost(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EventsLost)
        return problem_response(ServiceUnavailable(str(exc)), request.url.path)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = error_for_status(exc.status_code)(str(exc.detail), headers=exc.headers)
        response = problem_response(error, request.url.path)
        response.status_code = exc.status_code
        return response

    app.add_exception_handler(EmberError, ember_error)
    app.add_exception_handler(EventsLost, events_lost)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
