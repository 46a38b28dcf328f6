"""Observability: structured logs and traces (:mod:`ember.observability.tracing`,
:mod:`ember.observability.traces`)."""

from ember.observability.logs import REQUEST_ID, JsonFormatter, configure_logging

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging"]
