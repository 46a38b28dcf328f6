"""Vendor exceptions translated into ember's error tree: one rule, a table per adapter.

Each adapter keeps its vendor imports and its :class:`VendorErrors` table in its own module
(:mod:`ember.providers._ollama_errors`, :mod:`ember.providers.openai_embeddings`); this module
imports no vendor library. :func:`translate` applies the same three steps to every table:

1. **Class.** Of the table's classes the exception is an instance of, the most specific (the
   longest ``__mro__``) wins. An exception of none of them is a plain
   :class:`~ember.errors.ProviderError` whose detail names its type.
2. **Status.** When the winning class is one the table refines by status
   (:attr:`VendorErrors.refined`) and the exception carries an HTTP status, the table's
   :attr:`~VendorErrors.statuses` decide: the exact status first, then the first ``range``
   holding it; a status with no entry keeps the class's error. ``extra["status"]`` is set
   whenever the exception carries a positive status, refined or not.
3. **Retry-After.** When the exception carries response headers, :func:`retry_after_s` reads
   them into ``extra["retry_after_s"]``.

The detail is ember's own words (the call, the HTTP status or the exception's type), never
the vendor's message: an upstream error body can quote keys, prompts or internal addresses,
and ember's errors reach callers. The vendor's message goes to the ``ember.providers`` log.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ember.errors import ProviderError

__all__ = ["VendorErrors", "retry_after_s", "translate"]

log = logging.getLogger("ember.providers")


def _nothing(exc: BaseException) -> None:
    return None


@dataclass(frozen=True)
class VendorErrors:
    """One adapter's translation table (see the module docstring for how it is applied)."""

    classes: Mapping[type[BaseException], type[ProviderError]]
    """Every exception class the vendor's client can raise, mapped to ember's class for it;
    a completeness test per adapter checks that none is missing."""
    refined: frozenset[type[BaseException]] = frozenset()
    """Classes whose ember class the HTTP status decides, through :attr:`statuses`."""
    statuses: Mapping[int | range, type[ProviderError]] = field(default_factory=dict)
    """An HTTP status (or a ``range`` of them) to ember's class, for :attr:`refined`."""
    status: Callable[[BaseException], int | None] = _nothing
    """The HTTP status an exception carries, or ``None``."""
    headers: Callable[[BaseException], Mapping[str, str] | None] = _nothing
    """The headers of the response an exception was raised for, or ``None``."""

    @property
    def catches(self) -> tuple[type[BaseException], ...]:
        """The table's classes, for an ``except`` clause."""
        return tuple(self.classes)

    def by_status(self, status: int) -> type[ProviderError] | None:
        """ember's class for ``status``: the exact entry, else the first range holding it."""
        exact = self.statuses.get(status)
        if exact is not None:
            return exact
        for key, target in self.statuses.items():
            if isinstance(key, range) and status in key:
                return target
        return None


def translate(exc: BaseException, where: str, table: VendorErrors) -> ProviderError:
    """ember's error for ``exc`` by ``table``; ``where`` names the call and starts the detail.

    The caller raises it ``from exc``. ``extra`` carries the HTTP ``status`` when the
    exception had a positive one and ``retry_after_s`` when the response said when to retry.
    The detail never quotes ``exc`` (see the module docstring); the log line does.
    """
    log.warning(
        "%s: %s: %s",
        where,
        type(exc).__name__,
        exc,
        extra={"url": _request_url(exc)},
    )
    matches = [vendor for vendor in table.classes if isinstance(exc, vendor)]
    if not matches:
        return ProviderError(f"{where}: failed ({type(exc).__name__})")
    vendor = max(matches, key=lambda cls: len(cls.__mro__))
    target = table.classes[vendor]
    extra: dict[str, Any] = {}
    status = table.status(exc)
    if status is not None:
        if vendor in table.refined:
            target = table.by_status(status) or target
        if status > 0:
            extra["status"] = status
    headers = table.headers(exc)
    wait = retry_after_s(headers) if headers is not None else None
    if wait is not None:
        extra["retry_after_s"] = wait
    said = f"the provider answered HTTP {status}" if status and status > 0 else "failed"
    return target(f"{where}: {said} ({target.title.lower()}, {type(exc).__name__})", extra=extra)


def _request_url(exc: BaseException) -> str:
    """The URL of the request ``exc`` was raised for, without credentials or query string
    (either may hold a key), or ``""`` (httpx raises on a missing request instead of
    answering ``None``)."""
    try:
        url = urlsplit(str(exc.request.url))  # type: ignore[attr-defined]
    except Exception:
        return ""
    host = url.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if url.port is not None:
        netloc = f"{netloc}:{url.port}"
    return urlunsplit((url.scheme, netloc, url.path, "", ""))


def retry_after_s(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds a response asks the caller to wait before retrying, or ``None``.

    ``retry-after-ms`` (milliseconds, which OpenAI sends) wins when it is a finite number;
    else ``retry-after`` is read as delay-seconds (a finite decimal) or an HTTP-date, whose
    wait is the date minus ``now()`` (a date without a zone is UTC). A wait below zero (a date
    in the past) is 0; a missing, empty, unreadable or infinite value is ``None``. Nothing is
    capped here: the router compares the wait with ``router.retry_max_s`` and moves on to the
    next candidate when it is longer.

    ``headers`` is looked up with lower-case names (httpx's headers ignore case).
    """
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is None:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _finite(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
