"""ember's one error tree.

Every error ember raises on purpose is an :class:`EmberError`. Each class carries a stable
string ``code`` (clients match on it; it never changes once released), an HTTP ``status`` and
a ``title``. The API renders them as RFC 9457 problem+json; the CLI prints ``code: detail``.

    EmberError                      internal             500
    ├── ConfigError                 config_invalid       500
    ├── BadRequest                  bad_request          400
    │   ├── ValidationFailed        validation_failed    422
    │   ├── InvalidFilter           invalid_filter       422
    │   ├── DimensionMismatch       dimension_mismatch   422
    │   └── DocumentRejected        document_rejected    422
    │       ├── EmptyDocument       empty_document       422
    │       ├── BinaryDocument      binary_document      422
    │       ├── UnsupportedMediaType unsupported_media_type 415
    │       └── DocumentTooLarge    document_too_large   413
    ├── Unauthorized                unauthorized         401
    ├── Forbidden                   forbidden            403
    ├── NotFound                    not_found            404
    │   └── CollectionNotFound      collection_not_found 404
    ├── MethodNotAllowed            method_not_allowed   405
    ├── Conflict                    conflict             409
    │   └── CollectionExists        collection_exists    409
    ├── PayloadTooLarge             payload_too_large    413
    ├── RateLimited                 rate_limited         429
    ├── NotReady                    not_ready            503
    ├── PortInUse                   port_in_use          500
    ├── ClusterUnavailable          cluster_unavailable  503
    ├── DeployFailed                deploy_failed        500
    ├── ProviderError               provider_error       502
    │   ├── ProviderTimeout         provider_timeout     504
    │   ├── ProviderUnavailable     provider_unavailable 503
    │   ├── ProviderRateLimited     provider_rate_limited 429
    │   ├── ProviderBadRequest      provider_bad_request 400
    │   └── ProviderAuthFailed      provider_auth_failed 502
    ├── VectorIndexError            vector_index_error   500
    └── StorageError                storage_error        500
        ├── DatabaseUnavailable     database_unavailable 503
        ├── MigrationRequired       migration_required   503
        └── BackupError             backup_failed        500
            └── BackupInvalid       backup_invalid       400
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BackupError",
    "BackupInvalid",
    "BadRequest",
    "BinaryDocument",
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
    "EmberError",
    "EmptyDocument",
    "FieldError",
    "Forbidden",
    "InvalidFilter",
    "MethodNotAllowed",
    "MigrationRequired",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "PortInUse",
    "ProviderAuthFailed",
    "ProviderBadRequest",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "StorageError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "VectorIndexError",
    "all_error_classes",
    "error_for_status",
]

FieldError = dict[str, str]
"""One field failure: ``{"path": "body.name", "message": "...", "type": "..."}``."""


class EmberError(Exception):
    """Something went wrong inside ember."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip().splitlines()[0]
        self.errors = errors or []
        self.extra = extra or {}
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


class DimensionMismatch(BadRequest):
    """A vector has another dimension than the index or model expects."""

    code = "dimension_mismatch"
    status = 422
    title = "Dimension mismatch"


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


class Unauthorized(EmberError):
    """No valid credentials were presented."""

    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(EmberError):
    """The credentials lack the scope this action needs."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(EmberError):
    """The resource does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class CollectionNotFound(NotFound):
    """No collection has this name."""

    code = "collection_not_found"
    title = "Collection not found"


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


class PayloadTooLarge(EmberError):
    """The request body is larger than ember accepts."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class RateLimited(EmberError):
    """Too many requests; retry after the time given."""

    code = "rate_limited"
    status = 429
    title = "Rate limited"


class NotReady(EmberError):
    """ember is not ready to serve yet."""

    code = "not_ready"
    status = 503
    title = "Not ready"


class PortInUse(EmberError):
    """The port ember was asked to listen on is taken."""

    code = "port_in_use"
    title = "Port in use"


class ClusterUnavailable(EmberError):
    """The Ray cluster cannot be reached or started."""

    code = "cluster_unavailable"
    status = 503
    title = "Cluster unavailable"


class DeployFailed(EmberError):
    """The Serve application did not become healthy."""

    code = "deploy_failed"
    title = "Deploy failed"


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


class ProviderAuthFailed(ProviderError):
    """The provider rejected ember's credentials."""

    code = "provider_auth_failed"
    title = "Provider authentication failed"


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
