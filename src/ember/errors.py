"""ember's one error tree.

Every error ember raises on purpose is an :class:`EmberError`. Each class carries a stable
string ``code`` (clients match on it; it never changes once released), an HTTP ``status`` and
a ``title``. The API renders them as RFC 9457 problem+json; the CLI prints ``code: detail``.
An instance may carry response ``headers`` (``WWW-Authenticate`` on a 401, ``Retry-After`` on
a 429) that the API sends with the problem document.

    EmberError                      internal             500
    ├── ConfigError                 config_invalid       500
    ├── BadRequest                  bad_request          400
    │   ├── ValidationFailed        validation_failed    422
    │   ├── InvalidFilter           invalid_filter       422
    │   ├── InvalidCursor           invalid_cursor       400
    │   ├── UnknownJobKind          unknown_job_kind     422
    │   ├── DimensionMismatch       dimension_mismatch   422
    │   ├── InvalidExportLine       invalid_export_line  422
    │   ├── HostNotAllowed          host_not_allowed     421
    │   └── DocumentRejected        document_rejected    422
    │       ├── EmptyDocument       empty_document       422
    │       ├── BinaryDocument      binary_document      422
    │       ├── UnsupportedMediaType unsupported_media_type 415
    │       ├── DocumentTooLarge    document_too_large   413
    │       └── DocumentUnreadable  document_unreadable  422
    ├── Unauthorized                unauthorized         401
    ├── Forbidden                   forbidden            403
    │   ├── PathNotAllowed          path_not_allowed     403
    │   ├── OriginNotAllowed        origin_not_allowed   403
    │   └── PolicyDenied            policy_denied        403
    ├── NotFound                    not_found            404
    │   ├── CollectionNotFound      collection_not_found 404
    │   ├── JobNotFound             job_not_found        404
    │   ├── TokenNotFound           token_not_found      404
    │   ├── TraceNotFound           trace_not_found      404
    │   ├── ModelNotRegistered      model_not_registered 404
    │   ├── AgentNotFound           agent_not_found      404
    │   └── ArtifactNotFound        artifact_not_found   404
    ├── MethodNotAllowed            method_not_allowed   405
    ├── Conflict                    conflict             409
    │   ├── CollectionExists        collection_exists    409
    │   ├── AgentExists             agent_exists         409
    │   ├── IdempotencyConflict     idempotency_conflict 409
    │   ├── InvalidTransition       invalid_transition   409
    │   ├── JobFinished             job_finished         409
    │   ├── JobNotFinished          job_not_finished     409
    │   ├── JobCancelled            job_cancelled        409
    │   ├── ReindexRequired         reindex_required     409
    │   └── ModelDigestMismatch     model_digest_mismatch 409
    ├── PayloadTooLarge             payload_too_large    413
    │   └── RequestTooLarge         request_too_large    413
    ├── RateLimited                 rate_limited         429
    │   └── TooManyStreams          too_many_streams     429
    ├── QuotaExceeded               quota_exceeded       429
    ├── BudgetExceeded              budget_exceeded      429
    ├── JobError                    job_error            500
    │   ├── WorkerLost              worker_lost          500
    │   ├── JobTimedOut             job_timed_out        504
    │   ├── AgentLimitExceeded      agent_limit_exceeded 429
    │   └── VMTimeout               vm_timeout           504
    ├── NotReady                    not_ready            503
    ├── PortInUse                   port_in_use          500
    ├── ClusterUnavailable          cluster_unavailable  503
    ├── ServiceUnavailable          service_unavailable  503
    ├── UINotBuilt                  ui_not_built         503
    ├── DeployFailed                deploy_failed        500
    ├── ModelCapacityExceeded       model_capacity_exceeded 503
    ├── SandboxUnavailable          sandbox_unavailable  503
    ├── SandboxFailed               sandbox_failed       500
    ├── VMUnavailable               vm_unavailable       503
    ├── VMImageInvalid              vm_image_invalid     422
    ├── VMFailed                    vm_failed            502
    ├── McpServerFailed             mcp_server_failed    502
    ├── ProviderError               provider_error       502
    │   ├── ProviderTimeout         provider_timeout     504
    │   ├── ProviderUnavailable     provider_unavailable 503
    │   ├── ProviderRateLimited     provider_rate_limited 429
    │   ├── ProviderBadRequest      provider_bad_request 400
    │   │   └── ProviderModelNotFound provider_model_not_found 404
    │   ├── ProviderAuthFailed      provider_auth_failed 502
    │   ├── NoProviderAvailable     no_provider_available 503
    │   └── StreamInterrupted       stream_interrupted   502
    ├── VectorIndexError            vector_index_error   500
    └── StorageError                storage_error        500
        ├── DatabaseUnavailable     database_unavailable 503
        ├── MigrationRequired       migration_required   503
        └── BackupError             backup_failed        500
            └── BackupInvalid       backup_invalid       400
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AgentExists",
    "AgentLimitExceeded",
    "AgentNotFound",
    "ArtifactNotFound",
    "BackupError",
    "BackupInvalid",
    "BadRequest",
    "BinaryDocument",
    "BudgetExceeded",
    "ClusterUnavailable",
    "CollectionExists",
    "CollectionNotFound",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "DeployFailed",
    "DimensionMismatch",
    "DocumentRejected",
    "DocumentTooLarge",
    "DocumentUnreadable",
    "EmberError",
    "EmptyDocument",
    "FieldError",
    "Forbidden",
    "HostNotAllowed",
    "IdempotencyConflict",
    "InvalidCursor",
    "InvalidExportLine",
    "InvalidFilter",
    "InvalidTransition",
    "JobCancelled",
    "JobError",
    "JobFinished",
    "JobNotFinished",
    "JobNotFound",
    "JobTimedOut",
    "McpServerFailed",
    "MethodNotAllowed",
    "MigrationRequired",
    "ModelCapacityExceeded",
    "ModelDigestMismatch",
    "ModelNotRegistered",
    "NoProviderAvailable",
    "NotFound",
    "NotReady",
    "OriginNotAllowed",
    "PathNotAllowed",
    "PayloadTooLarge",
    "PolicyDenied",
    "PortInUse",
    "ProviderAuthFailed",
    "ProviderBadRequest",
    "ProviderError",
    "ProviderModelNotFound",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "ReindexRequired",
    "RequestTooLarge",
    "SandboxFailed",
    "SandboxUnavailable",
    "ServiceUnavailable",
    "StorageError",
    "StreamInterrupted",
    "TokenNotFound",
    "TooManyStreams",
    "TraceNotFound",
    "UINotBuilt",
    "Unauthorized",
    "UnknownJobKind",
    "UnsupportedMediaType",
    "VMFailed",
    "VMImageInvalid",
    "VMTimeout",
    "VMUnavailable",
    "ValidationFailed",
    "VectorIndexError",
    "WorkerLost",
    "all_error_classes",
    "error_for_code",
    "error_for_status",
]

FieldError = dict[str, str]
"""One field failure: ``{"path": "body.name", "message": "...", "type": "..."}``."""


class EmberError(Exception):
    """Something went wrong inside ember."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip().splitlines()[0]
        self.errors = errors or []
        self.extra = extra or {}
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}
        super().__init__(self.detail)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class ConfigError(EmberError):
    """The configuration is invalid."""

    code = "config_invalid"
    title = "Invalid configuration"


class BadRequest(EmberError):
    """The request cannot be processed as sent."""

    code = "bad_request"
    status = 400
    title = "Bad request"


class ValidationFailed(BadRequest):
    """The request did not pass validation; ``errors`` names each field."""

    code = "validation_failed"
    status = 422
    title = "Validation failed"


class InvalidFilter(BadRequest):
    """The metadata filter is not valid."""

    code = "invalid_filter"
    status = 422
    title = "Invalid filter"


class InvalidCursor(BadRequest):
    """The page cursor is not one ember gave out (forged, garbled or truncated)."""

    code = "invalid_cursor"
    title = "Invalid cursor"


class UnknownJobKind(BadRequest):
    """No job kind has this name."""

    code = "unknown_job_kind"
    status = 422
    title = "Unknown job kind"


class DimensionMismatch(BadRequest):
    """A vector has another dimension than the index or model expects."""

    code = "dimension_mismatch"
    status = 422
    title = "Dimension mismatch"


class InvalidExportLine(BadRequest):
    """A line of a collection export is not what an export holds there; nothing was imported.

    ``extra["line"]`` is the line's number (the header is line 1).
    """

    code = "invalid_export_line"
    status = 422
    title = "Invalid export line"


class HostNotAllowed(BadRequest):
    """The request's ``Host`` header names no host this server answers for."""

    code = "host_not_allowed"
    status = 421
    title = "Host not allowed"


class DocumentRejected(BadRequest):
    """The document cannot be ingested."""

    code = "document_rejected"
    status = 422
    title = "Document rejected"


class EmptyDocument(DocumentRejected):
    """The document has no text."""

    code = "empty_document"
    title = "Empty document"


class BinaryDocument(DocumentRejected):
    """The document is binary data, not text of a supported format."""

    code = "binary_document"
    title = "Binary document"


class UnsupportedMediaType(DocumentRejected):
    """The document's format is not supported."""

    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class DocumentTooLarge(DocumentRejected):
    """The document is larger than the configured limit."""

    code = "document_too_large"
    status = 413
    title = "Document too large"


class DocumentUnreadable(DocumentRejected):
    """The document's format was recognised but its content could not be read."""

    code = "document_unreadable"
    title = "Document unreadable"


class Unauthorized(EmberError):
    """No valid credentials were presented."""

    code = "unauthorized"
    status = 401
    title = "Unauthorized"
    default_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="ember"'}


class Forbidden(EmberError):
    """The credentials lack the scope this action needs."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class PathNotAllowed(Forbidden):
    """The path is outside the directories the server may read for a job."""

    code = "path_not_allowed"
    title = "Path not allowed"


class OriginNotAllowed(Forbidden):
    """The request comes from a web page whose origin may not call this server."""

    code = "origin_not_allowed"
    title = "Origin not allowed"


class PolicyDenied(Forbidden):
    """The agent's policy does not allow this (a tool, a path, a host, or a wider profile).

    ``extra`` may name the ``field`` of the profile or the ``path``/``host`` refused.
    """

    code = "policy_denied"
    title = "Policy denied"


class NotFound(EmberError):
    """The resource does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class CollectionNotFound(NotFound):
    """No collection has this name."""

    code = "collection_not_found"
    title = "Collection not found"


class JobNotFound(NotFound):
    """No job has this id (or it belongs to another principal)."""

    code = "job_not_found"
    title = "Job not found"


class TraceNotFound(NotFound):
    """The job was not traced, or its trace is no longer among the recent traces kept."""

    code = "trace_not_found"
    title = "Trace not found"


class TokenNotFound(NotFound):
    """No API token has this id."""

    code = "token_not_found"
    title = "Token not found"


class ModelNotRegistered(NotFound):
    """No model file is registered under this name (``ember models pin`` registers one)."""

    code = "model_not_registered"
    title = "Model not registered"


class AgentNotFound(NotFound):
    """No agent profile has this name in the caller's workspace."""

    code = "agent_not_found"
    title = "Agent not found"


class ArtifactNotFound(NotFound):
    """The job left no file at this path."""

    code = "artifact_not_found"
    title = "Artifact not found"


class MethodNotAllowed(EmberError):
    """The resource does not support this HTTP method."""

    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Conflict(EmberError):
    """The request conflicts with the current state of the resource."""

    code = "conflict"
    status = 409
    title = "Conflict"


class CollectionExists(Conflict):
    """A collection with this name already exists."""

    code = "collection_exists"
    title = "Collection exists"


class AgentExists(Conflict):
    """An agent profile with this name already exists in the workspace."""

    code = "agent_exists"
    title = "Agent exists"


class IdempotencyConflict(Conflict):
    """This Idempotency-Key was already used with another request body."""

    code = "idempotency_conflict"
    title = "Idempotency key reused"


class InvalidTransition(Conflict):
    """The job is not in the state this change needs (another change came first)."""

    code = "invalid_transition"
    title = "Invalid state transition"


class JobFinished(Conflict):
    """The job has already finished."""

    code = "job_finished"
    title = "Job already finished"


class JobNotFinished(Conflict):
    """The job has no result yet: it has not finished."""

    code = "job_not_finished"
    title = "Job not finished"


class JobCancelled(Conflict):
    """The job was cancelled, so it has no result."""

    code = "job_cancelled"
    title = "Job cancelled"


class ReindexRequired(Conflict):
    """The collection is indexed with another embedding model than the one configured."""

    code = "reindex_required"
    title = "Reindex required"


class PayloadTooLarge(EmberError):
    """The request body is larger than ember accepts."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class RequestTooLarge(PayloadTooLarge):
    """The request body is over the size this route accepts; nothing was done with it.

    ``extra`` holds ``limit_bytes``, the cap that applies.
    """

    code = "request_too_large"
    title = "Request too large"


def _retry_after(
    retry_after_s: float, extra: dict[str, Any] | None, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """The ``extra`` and ``headers`` of an error that says when to retry: ``Retry-After`` and
    the body's ``retry_after_s``, rounded up to whole seconds, at least 1."""
    seconds = max(1, math.ceil(retry_after_s))
    return {
        "extra": {"retry_after_s": seconds, **(extra or {})},
        "headers": {"Retry-After": str(seconds), **(headers or {})},
    }


class RateLimited(EmberError):
    """Too many requests; retry after the time given.

    ``retry_after_s`` is the wait until a request would pass; ``Retry-After`` (and the body's
    ``retry_after_s``) carry it rounded up to whole seconds, at least 1.
    """

    code = "rate_limited"
    status = 429
    title = "Rate limited"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after_s: float = 1.0,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(detail, errors=errors, **_retry_after(retry_after_s, extra, headers))


class TooManyStreams(RateLimited):
    """The principal already has as many open event streams as it may; close one first."""

    code = "too_many_streams"
    title = "Too many streams"


class QuotaExceeded(EmberError):
    """The principal has as many unfinished jobs as its quota allows."""

    code = "quota_exceeded"
    status = 429
    title = "Quota exceeded"


class BudgetExceeded(EmberError):
    """The call would take the principal or the provider past its budget for the rolling day.

    ``extra`` names the ``scope`` (``principal`` or ``provider``), who it is, the ``limit``
    (``tokens`` or ``cost_usd``), what was ``spent`` and the call's ``estimate``. Nothing was
    sent to the provider.
    """

    code = "budget_exceeded"
    status = 429
    title = "Budget exceeded"


class JobError(EmberError):
    """A job could not be run to its end."""

    code = "job_error"
    title = "Job error"


class WorkerLost(JobError):
    """The worker running the job stopped renewing its lease, on every allowed attempt."""

    code = "worker_lost"
    title = "Worker lost"


class JobTimedOut(JobError):
    """The job ran past its time limit."""

    code = "job_timed_out"
    status = 504
    title = "Job timed out"


class AgentLimitExceeded(JobError):
    """The agent run hit one of its limits (steps, wall time, tokens or cost) and stopped.

    ``extra`` names the ``limit`` and its configured ``value``.
    """

    code = "agent_limit_exceeded"
    status = 429
    title = "Agent limit exceeded"


class NotReady(EmberError):
    """ember is not ready to serve yet."""

    code = "not_ready"
    status = 503
    title = "Not ready"


class UINotBuilt(EmberError):
    """This installation has no built web UI (its assets are made by ``make up``)."""

    code = "ui_not_built"
    status = 503
    title = "Web UI not built"


class PortInUse(EmberError):
    """The port ember was asked to listen on is taken."""

    code = "port_in_use"
    title = "Port in use"


class ClusterUnavailable(EmberError):
    """The Ray cluster cannot be reached or started."""

    code = "cluster_unavailable"
    status = 503
    title = "Cluster unavailable"


class ServiceUnavailable(EmberError):
    """A cluster service ember needs is not running right now; retry shortly.

    Raised when one of the cluster's singleton actors (the event hub, the job dispatcher, the
    model registry) stays unreachable after a bounded retry, as while Ray restarts it.
    ``Retry-After`` (and the body's ``retry_after_s``) say when to try again: whole seconds,
    at least 1.
    """

    code = "service_unavailable"
    status = 503
    title = "Service unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after_s: float = 5.0,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(detail, errors=errors, **_retry_after(retry_after_s, extra, headers))


class DeployFailed(EmberError):
    """The Serve application did not become healthy."""

    code = "deploy_failed"
    title = "Deploy failed"


class ModelDigestMismatch(Conflict):
    """The model file's sha256 is not the digest it was pinned to; it is not loaded."""

    code = "model_digest_mismatch"
    title = "Model digest mismatch"


class ModelCapacityExceeded(EmberError):
    """No node has room for the model, even after evicting every model that may be evicted."""

    code = "model_capacity_exceeded"
    status = 503
    title = "Model capacity exceeded"


class SandboxUnavailable(EmberError):
    """Commands cannot be sandboxed on this machine; ``detail`` names the missing prerequisite.

    Raised by :meth:`~ember.sandbox.protocol.Sandbox.check` (and by ``run`` before anything is
    started): bubblewrap not on ``PATH``, user namespaces disabled, libseccomp missing, or a
    trivial sandboxed ``true`` failing. Nothing ran.
    """

    code = "sandbox_unavailable"
    status = 503
    title = "Sandbox unavailable"


class SandboxFailed(EmberError):
    """The sandbox could not be set up for this command (bubblewrap's own error is in
    ``detail``); the command did not run."""

    code = "sandbox_failed"
    title = "Sandbox failed"


class VMUnavailable(EmberError):
    """VMs cannot be run on this machine; ``detail`` names what is missing (the hypervisor
    daemon, QEMU, a built guest image) and how to get it. Nothing ran."""

    code = "vm_unavailable"
    status = 503
    title = "VM unavailable"


class VMImageInvalid(EmberError):
    """The guest image named is not usable: its directory, kernel or initramfs is missing or
    unreadable, or its manifest is broken; ``extra["path"]`` names what is wrong."""

    code = "vm_image_invalid"
    status = 422
    title = "VM image invalid"


class VMFailed(EmberError):
    """The VM could not be defined, booted or torn down, or its guest died before reporting
    the command's end; ``detail`` says which, with the hypervisor's own words."""

    code = "vm_failed"
    status = 502
    title = "VM failed"


class VMTimeout(JobError):
    """The VM ran past its wall clock (``extra["timeout_s"]``): it was destroyed."""

    code = "vm_timeout"
    status = 504
    title = "VM timed out"


class McpServerFailed(EmberError):
    """An agent's MCP server could not be started or reached, or failed a request: it
    exited, closed the connection, did not answer in time, or broke the protocol; ``detail``
    names the server and what happened."""

    code = "mcp_server_failed"
    status = 502
    title = "MCP server failed"


class ProviderError(EmberError):
    """A model provider failed."""

    code = "provider_error"
    status = 502
    title = "Provider error"


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    code = "provider_timeout"
    status = 504
    title = "Provider timeout"


class ProviderUnavailable(ProviderError):
    """The provider cannot be reached or is overloaded."""

    code = "provider_unavailable"
    status = 503
    title = "Provider unavailable"


class ProviderRateLimited(ProviderError):
    """The provider refused the call for its rate limit."""

    code = "provider_rate_limited"
    status = 429
    title = "Provider rate limited"


class ProviderBadRequest(ProviderError):
    """The provider rejected the request as invalid."""

    code = "provider_bad_request"
    status = 400
    title = "Provider rejected the request"


class ProviderModelNotFound(ProviderBadRequest):
    """The provider does not serve this model."""

    code = "provider_model_not_found"
    status = 404
    title = "Model not found at the provider"


class ProviderAuthFailed(ProviderError):
    """The provider rejected ember's credentials."""

    code = "provider_auth_failed"
    title = "Provider authentication failed"


class NoProviderAvailable(ProviderError):
    """No candidate of the model alias could answer.

    ``detail`` lists each candidate and why it failed; ``extra["candidates"]`` holds the same
    as records (``provider``, ``model``, ``outcome``, ``detail``). The last candidate's error
    is chained as ``__cause__``.
    """

    code = "no_provider_available"
    status = 503
    title = "No provider available"


class StreamInterrupted(ProviderError):
    """The provider failed after a stream had started; what it had produced is kept.

    ``extra`` holds ``partial_text`` (the deltas already yielded, joined), ``cause_code`` (the
    provider error's code), ``provider`` and ``model``. The provider error is ``__cause__``.
    """

    code = "stream_interrupted"
    title = "Stream interrupted"


class VectorIndexError(EmberError):
    """A vector index failed."""

    code = "vector_index_error"
    title = "Vector index error"


class StorageError(EmberError):
    """The database failed."""

    code = "storage_error"
    title = "Storage error"


class DatabaseUnavailable(StorageError):
    """The database cannot be reached."""

    code = "database_unavailable"
    status = 503
    title = "Database unavailable"


class MigrationRequired(StorageError):
    """The database schema is not at the revision this ember needs."""

    code = "migration_required"
    status = 503
    title = "Migration required"


class BackupError(StorageError):
    """A backup or restore failed."""

    code = "backup_failed"
    title = "Backup failed"


class BackupInvalid(BackupError):
    """The file is not an ember backup this database can restore."""

    code = "backup_invalid"
    status = 400
    title = "Invalid backup"


def all_error_classes() -> list[type[EmberError]]:
    """Every class of the tree, root first, in definition order."""
    found: list[type[EmberError]] = [EmberError]
    pending = list(EmberError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[EmberError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: NotReady,
}


def error_for_status(status: int) -> type[EmberError]:
    """The generic class for an HTTP status raised outside ember (router 404, 405, ...)."""
    return _BY_STATUS.get(status, EmberError)


def error_for_code(code: str | None) -> type[EmberError]:
    """The class whose ``code`` is ``code`` (the root class for an unknown or no code)."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return EmberError
