"""The ``tracing`` section: OpenTelemetry traces, where they go and how many are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["TracingConfig"]


class TracingConfig(BaseModel):
    """Traces: one per request or job, kept in memory for ``GET /jobs/{id}/trace`` and, when an
    exporter is chosen, sent on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Record spans. Off: no span is made anywhere (no cost), `GET "
        "/jobs/{id}/trace` answers 404 `trace_not_found`.",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a request whose `traceparent` says sampled "
        "is recorded whatever this is.",
    )
    exporter: Literal["none", "otlp", "console", "file"] = Field(
        "none",
        description="Where spans go besides the in-memory store: `otlp` (a collector, see "
        "`otlp_protocol` and `endpoint`), `console` (stderr), `file` (JSON lines at `file`).",
    )
    otlp_protocol: Literal["http", "grpc"] = Field(
        "http", description="OTLP over HTTP/protobuf or gRPC."
    )
    endpoint: str | None = Field(
        None,
        description="The OTLP collector's URL; unset: the exporter's own default "
        "(`OTEL_EXPORTER_OTLP_ENDPOINT`, else localhost:4318 for HTTP, :4317 for gRPC).",
    )
    file: Path | None = Field(
        None, description="The JSON-lines file spans are appended to (`exporter: file`)."
    )
    capture_content: bool = Field(
        False,
        description="Record agents' tool arguments and results on spans; off, spans carry "
        "their sizes only. Prompts and answers are never recorded, only token counts.",
    )
    recent_traces: int = Field(
        500, ge=1, le=100_000, description="Traces the in-memory store keeps (oldest go first)."
    )
    spans_per_trace: int = Field(
        2000, ge=16, le=1_000_000, description="Spans kept per trace; later ones are dropped."
    )

    @model_validator(mode="after")
    def _file_needs_a_path(self) -> TracingConfig:
        if self.exporter == "file" and self.file is None:
            raise ValueError("tracing.exporter is file but tracing.file is not set")
        return self
