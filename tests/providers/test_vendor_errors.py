"""The one vendor-error translator: class precedence, status refinement, ``Retry-After``; and
every adapter's table checked complete against what its vendor client can raise."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from ember.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.providers.vendor_errors import VendorErrors, retry_after_s, translate
from tests.providers.vendor_classes import WALKS, Walk

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


class VendorError(Exception):
    """The vendor's base class."""


class VendorTimeout(VendorError):
    pass


class VendorReadTimeout(VendorTimeout):
    pass


class VendorStatus(VendorError):
    """An HTTP error, with the response's status and headers."""

    def __init__(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers


class VendorRateLimit(VendorStatus):
    pass


def _status(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, VendorStatus) else None


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    return exc.headers if isinstance(exc, VendorStatus) else None


TABLE = VendorErrors(
    {
        VendorReadTimeout: ProviderTimeout,  # the order of the entries does not matter
        VendorError: ProviderError,
        VendorTimeout: ProviderUnavailable,
        VendorStatus: ProviderError,
        VendorRateLimit: ProviderRateLimited,
    },
    refined=frozenset({VendorStatus}),
    statuses={401: ProviderAuthFailed, 408: ProviderTimeout, range(500, 600): ProviderUnavailable},
    status=_status,
    headers=_headers,
)


# --- class, then status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (VendorError("x"), ProviderError),
        (VendorTimeout("x"), ProviderUnavailable),
        (VendorReadTimeout("x"), ProviderTimeout),
        (VendorRateLimit(429), ProviderRateLimited),
    ],
    ids=lambda value: type(value).__name__,
)
def test_the_most_specific_class_wins(exc: Exception, expected: type[ProviderError]) -> None:
    assert type(translate(exc, "call", TABLE)) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ProviderAuthFailed),
        (408, ProviderTimeout),
        (500, ProviderUnavailable),
        (599, ProviderUnavailable),
        (418, ProviderError),
        (600, ProviderError),
    ],
)
def test_a_refined_class_is_mapped_by_status(status: int, expected: type[ProviderError]) -> None:
    error = translate(VendorStatus(status), "call", TABLE)
    assert type(error) is expected
    assert error.extra == {"status": status}
    assert error.detail == (
        f"call: the provider answered HTTP {status} ({expected.title.lower()}, VendorStatus)"
    )


def test_a_class_not_refined_keeps_its_error_whatever_the_status() -> None:
    error = translate(VendorRateLimit(503), "call", TABLE)
    assert type(error) is ProviderRateLimited
    assert error.extra == {"status": 503}


def test_an_exact_status_wins_over_a_range() -> None:
    table = VendorErrors(
        {VendorStatus: ProviderError},
        refined=frozenset({VendorStatus}),
        statuses={range(500, 600): ProviderUnavailable, 504: ProviderTimeout},
        status=_status,
    )
    assert type(translate(VendorStatus(504), "call", table)) is ProviderTimeout
    assert type(translate(VendorStatus(502), "call", table)) is ProviderUnavailable


def test_a_status_that_is_no_http_status_is_not_reported() -> None:
    table = VendorErrors(
        {VendorStatus: ProviderError},
        refined=frozenset({VendorStatus}),
        statuses={-1: ProviderUnavailable},
        status=_status,
    )
    error = translate(VendorStatus(-1), "call", table)
    assert type(error) is ProviderUnavailable
    assert error.extra == {}


def test_an_exception_outside_the_table_is_a_provider_error_naming_its_type() -> None:
    error = translate(RuntimeError("odd"), "call", TABLE)
    assert type(error) is ProviderError
    assert error.detail == "call: failed (RuntimeError)", "the vendor's words stay in the log"
    assert error.extra == {}


def test_catches_is_every_class_of_the_table() -> None:
    assert set(TABLE.catches) == set(TABLE.classes)


# --- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 0.5 "}, 0.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "-20"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "Thu, 02 Jan 2025 03:05:05 -0000"}, 60.0),
        ({}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e999"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after": "Thu, 99 Foo 2025 99:99:99 GMT"}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers, now=lambda: NOW) == expected


def test_retry_after_reaches_the_error() -> None:
    error = translate(VendorRateLimit(429, {"retry-after": "2"}), "call", TABLE)
    assert error.extra == {"status": 429, "retry_after_s": 2.0}
    garbage = translate(VendorRateLimit(429, {"retry-after": "later, maybe"}), "call", TABLE)
    assert garbage.extra == {"status": 429}
    missing = translate(VendorRateLimit(429, None), "call", TABLE)
    assert missing.extra == {"status": 429}


# --- every adapter's table ----------------------------------------------------------------------


@pytest.mark.parametrize("walk", WALKS.values(), ids=list(WALKS))
def test_the_table_is_well_formed(walk: Walk) -> None:
    table = walk.table
    assert table.classes
    assert all(issubclass(target, ProviderError) for target in table.classes.values())
    assert all(issubclass(target, ProviderError) for target in table.statuses.values())
    assert table.refined <= set(table.classes)
    assert table.status(RuntimeError()) is None and table.headers(RuntimeError()) is None


@pytest.mark.parametrize("walk", WALKS.values(), ids=list(WALKS))
def test_the_walks_find_classes(walk: Walk) -> None:
    assert len(walk.vendor_classes()) >= 10


CASES = [(name, walk, vendor) for name, walk in WALKS.items() for vendor in walk.vendor_classes()]


@pytest.mark.parametrize(
    ("walk", "vendor"),
    [(walk, vendor) for _, walk, vendor in CASES],
    ids=[f"{name}-{vendor.__module__}.{vendor.__qualname__}" for name, _, vendor in CASES],
)
def test_every_vendor_exception_is_mapped(walk: Walk, vendor: type[BaseException]) -> None:
    assert vendor in walk.table.classes, (
        f"{vendor.__module__}.{vendor.__qualname__} needs an entry in the table "
        "(or a reason in the walk's not_reached)"
    )


# --- the log line -----------------------------------------------------------------------------


class _Request:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("http://user:s3cret@127.0.0.1:8080/v1/chat?key=s3cret", "http://127.0.0.1:8080/v1/chat"),
        ("https://api.example.test/v1/models", "https://api.example.test/v1/models"),
        ("http://[::1]:9/v1?api-key=s3cret", "http://[::1]:9/v1"),
    ],
)
def test_the_logged_url_carries_no_credentials_or_query(
    url: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    exc = VendorError("boom")
    exc.request = _Request(url)  # type: ignore[attr-defined]
    with caplog.at_level("WARNING", logger="ember.providers"):
        translate(exc, "call", TABLE)
    (record,) = caplog.records
    assert record.url == logged  # type: ignore[attr-defined]
    assert "s3cret" not in caplog.text
