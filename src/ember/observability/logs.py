"""Structured logs: one JSON object per line.

Every line has ``ts`` (RFC 3339, UTC), ``level``, ``service``, ``requestId`` (``null`` outside
a request), ``logger`` and ``msg``, and ``traceId`` inside a recorded span. Fields passed
through ``extra=`` are added as they are (names starting with ``_`` are private to the logging
machinery and left out), so later layers add ``jobId``, ``provider``, ``model``, ``tokens``,
``latencyMs`` and ``outcome`` without touching this module.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging"]

REQUEST_ID: ContextVar[str | None] = ContextVar("ember_request_id", default=None)
"""The id of the request being handled in this context, set by the request-id middleware."""

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with ember's standard fields first."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "requestId": getattr(record, "requestId", None) or REQUEST_ID.get(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid and span.trace_flags.sampled:
            entry["traceId"] = trace.format_trace_id(span.trace_id)
        entry["logger"] = record.name
        entry["msg"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = REQUEST_ID.get()
        base = super().format(record)
        return f"{base} [{rid}]" if rid else base


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send the ``ember`` logger tree, and Python warnings (``py.warnings``: a library's
    deprecation or runtime warnings), to stderr in the chosen format; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    for name, threshold in (("ember", level), ("py.warnings", "WARNING")):
        logger = logging.getLogger(name)
        logger.setLevel(threshold)
        logger.propagate = False
        logger.handlers = [handler]
