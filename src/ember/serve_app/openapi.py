"""What ember's OpenAPI document says about errors.

Every 4xx and 5xx answer of ember's own routes is RFC 9457 ``application/problem+json``
(:mod:`.problems`); the OpenAI and Ollama dialects (tags ``openai`` and ``ollama``) answer in
their own error shapes, as ``application/json``, with ember's ``code`` inside. The published
schema says exactly that: :func:`document_problems` gives every error response of every
operation its schema (``Problem``, ``OpenAIError`` or ``OllamaError``; each ``code`` one of
ember's error codes), and declares the errors any operation may answer with: 400 when a body
is not JSON (and, in the dialects, when it fails validation), 413 ``request_too_large`` for a
body over the front door's cap, 422 ``validation_failed`` for a body or parameter that fails
validation, and in the dialects the provider errors every model
call may end in. The errors particular to a route (404, 409, 503, ...) are declared by the
route's own ``responses=`` (:func:`problem_responses`). The fuzz test (``tests/fuzz``) holds
every answer to this document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from ember.errors import (
    BudgetExceeded,
    EmberError,
    HostNotAllowed,
    NoProviderAvailable,
    OriginNotAllowed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    RequestTooLarge,
    all_error_classes,
)
from ember.serve_app.problems import PROBLEM_JSON

__all__ = ["ERROR_SHAPES", "ErrorShape", "document_problems", "problem_responses"]

_CODES = sorted({cls.code for cls in all_error_classes()})
_CODE = {"type": "string", "enum": _CODES}


def problem_responses(*errors: type[EmberError], **extra: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers with ``errors``: each status with the codes
    that carry it, as in ``problem_responses(JobNotFound, JobFinished)``; ``extra`` adds
    statuses by name (``_5XX="the failed job's own error"``)."""
    found: dict[int | str, list[str]] = {}
    for cls in errors:
        found.setdefault(cls.status, []).append(cls.code)
    declared: dict[int | str, dict[str, Any]] = {
        status: {"description": ", ".join(codes)} for status, codes in found.items()
    }
    for name, text in extra.items():
        declared[name.lstrip("_")] = {"description": text}
    return declared


@dataclass(frozen=True)
class ErrorShape:
    """How the operations of one tag answer errors."""

    media_type: str
    name: str
    """The schema's name under ``#/components/schemas``."""
    schema: dict[str, Any]
    always: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    """Error responses every operation of the tag may give."""


_MODEL_CALL = problem_responses(
    ProviderBadRequest,
    ProviderModelNotFound,
    ProviderRateLimited,
    BudgetExceeded,
    ProviderError,
    ProviderUnavailable,
    NoProviderAvailable,
    ProviderTimeout,
)

ERROR_SHAPES: dict[str, ErrorShape] = {
    "": ErrorShape(
        PROBLEM_JSON,
        "Problem",
        {
            "title": "Problem",
            "description": "An RFC 9457 problem document; match on `code` (docs/errors.md).",
            "type": "object",
            "required": ["type", "title", "status", "detail", "code", "request_id"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "code": _CODE,
                "request_id": {"type": ["string", "null"]},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {k: {"type": "string"} for k in ("path", "message", "type")},
                    },
                },
            },
        },
    ),
    "openai": ErrorShape(
        "application/json",
        "OpenAIError",
        {
            "title": "OpenAIError",
            "description": "OpenAI's error shape; `code` is ember's (docs/errors.md).",
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": _CODE,
                    },
                }
            },
        },
        _MODEL_CALL,
    ),
    "ollama": ErrorShape(
        "application/json",
        "OllamaError",
        {
            "title": "OllamaError",
            "description": "Ollama's error shape plus ember's `code` (docs/errors.md).",
            "type": "object",
            "required": ["error", "code"],
            "properties": {"error": {"type": "string"}, "code": _CODE},
        },
        _MODEL_CALL,
    ),
}
"""Tag of an operation (``""``: any other tag) to how its errors look."""

_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _front_door(responses: dict[str, Any]) -> None:
    """The front door's refusals, problem+json on every route whatever its dialect
    (:mod:`ember.serve_app.guards` answers before any route runs)."""
    problem = {"schema": {"$ref": f"#/components/schemas/{ERROR_SHAPES[''].name}"}}
    for status, code in (("421", HostNotAllowed.code), ("403", OriginNotAllowed.code)):
        response = responses.setdefault(status, {"description": code})
        if code not in response["description"]:
            response["description"] += f", {code}"
        response.setdefault("content", {})[PROBLEM_JSON] = problem


def _document(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for shape in ERROR_SHAPES.values():
        components[shape.name] = shape.schema
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            tag = next((t for t in operation.get("tags", ()) if t in ERROR_SHAPES), "")
            shape = ERROR_SHAPES[tag]
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in shape.always.items():
                responses.setdefault(str(status), dict(response))
            if "requestBody" in operation:
                why = "bad_request, validation_failed" if tag else "bad_request (a body not JSON)"
                responses.setdefault("400", {"description": why})
                responses.setdefault("413", {"description": RequestTooLarge.code})
            if "requestBody" in operation or operation.get("parameters"):
                responses.setdefault("422", {"description": "validation_failed"})
            reference = {"$ref": f"#/components/schemas/{shape.name}"}
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = {shape.media_type: {"schema": reference}}
                    if response.get("description") == "Validation Error":
                        response["description"] = "validation_failed"
            _front_door(responses)
    for name in _FASTAPI_SCHEMAS:  # FastAPI's own 422 body, which ember never sends
        components.pop(name, None)
    return schema


def document_problems(app: FastAPI) -> None:
    """Publish ember's errors in ``app``'s OpenAPI (see the module docstring). Install it after
    every other OpenAPI post-processor, so it sees every response they declare."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
