"""Observability: structured logging (metrics and tracing arrive with later layers)."""

from ember.observability.logs import REQUEST_ID, JsonFormatter, configure_logging

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging"]
