"""The error tree: stable, unique codes and sensible statuses."""

from __future__ import annotations

import re

import pytest

from ember import errors
from ember.errors import EmberError, all_error_classes, error_for_status


def test_codes_are_unique_snake_case() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", code) for code in codes)


def test_every_class_is_exported_and_drawn_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in all_error_classes():
        assert cls.__name__ in errors.__all__
        assert re.search(rf"{cls.__name__}\s+{cls.code}\s+{cls.status}\b", doc), cls


@pytest.mark.parametrize("cls", all_error_classes())
def test_status_is_an_http_error_status(cls: type[EmberError]) -> None:
    assert 400 <= cls.status <= 599
    assert cls().detail


def test_subclass_keeps_parent_status_family() -> None:
    for cls in all_error_classes()[1:]:
        parent = cls.__mro__[1]
        if parent is not EmberError and cls.status != parent.status:
            assert (cls.status // 100, parent.status // 100) in {(4, 4), (4, 5), (5, 5)}


def test_detail_and_str() -> None:
    error = errors.CollectionNotFound("no collection named 'x'")
    assert str(error) == "collection_not_found: no collection named 'x'"
    assert errors.NotReady().detail == "ember is not ready to serve yet."


def test_error_for_status_maps_framework_errors() -> None:
    assert error_for_status(404) is errors.NotFound
    assert error_for_status(405) is errors.MethodNotAllowed
    assert error_for_status(418) is EmberError


def test_errors_carry_response_headers() -> None:
    unauthorized = errors.Unauthorized()
    assert unauthorized.headers == {"WWW-Authenticate": 'Bearer realm="ember"'}
    unauthorized.headers["X"] = "1"
    assert "X" not in errors.Unauthorized().headers
    assert errors.NotFound().headers == {}
    assert errors.NotFound(headers={"X-A": "b"}).headers == {"X-A": "b"}


@pytest.mark.parametrize(("wait", "header"), [(0.0, "1"), (0.01, "1"), (1.0, "1"), (2.5, "3")])
def test_rate_limited_rounds_retry_after_up(wait: float, header: str) -> None:
    error = errors.RateLimited(retry_after_s=wait)
    assert error.retry_after_s == wait
    assert error.headers == {"Retry-After": header}
    assert error.extra == {"retry_after_s": int(header)}
