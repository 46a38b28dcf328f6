"""The filter grammar: parsing, errors that say where, and the Python semantics."""

from __future__ import annotations

from typing import Any

import pytest

from ember.errors import InvalidFilter
from ember.filters import And, Condition, Or, matches, parse_filter


def test_parse_builds_the_tree() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert parse_filter({"a": 1}) == Condition("a", "$eq", 1)
    assert parse_filter({"a": 1, "b": {"$in": ["x", "y"]}}) == And(
        (Condition("a", "$eq", 1), Condition("b", "$in", ("x", "y")))
    )
    assert parse_filter({"$or": [{"a": 1}, {"a": {"$gt": 2, "$lte": 5}}]}) == Or(
        (Condition("a", "$eq", 1), And((Condition("a", "$gt", 2), Condition("a", "$lte", 5))))
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "non-empty object"),
        ({"a": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"$not": {"a": 1}}, "unknown operator '$not'"),
        ({"a": {"$in": []}}, "non-empty list"),
        ({"a": {"$in": "x"}}, "non-empty list"),
        ({"a": {"$gt": True}}, "cannot order booleans"),
        ({"a": [1]}, "expected a string, number or boolean"),
        ({"a": None}, "expected a string, number or boolean"),
        ({"a": float("nan")}, "expected a string, number or boolean"),
        ({"bad name!": 1}, "invalid field name"),
        ({"$and": []}, "non-empty list"),
        ({"a": {}}, "empty operator object"),
    ],
)
def test_invalid_filters_say_what_is_wrong(raw: Any, message: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(raw)
    assert message in caught.value.detail
    assert caught.value.code == "invalid_filter" and caught.value.status == 422


def test_too_deep() -> None:
    node: dict[str, Any] = {"a": 1}
    for _ in range(10):
        node = {"$and": [node]}
    with pytest.raises(InvalidFilter, match="deeper"):
        parse_filter(node)


@pytest.mark.parametrize(
    ("raw", "metadata", "expected"),
    [
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": "1"}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": {"$ne": 1}}, {}, True),
        ({"a": {"$ne": 1}}, {"a": [1]}, True),
        ({"a": {"$gt": 1}}, {}, False),
        ({"a": {"$lt": "b"}}, {"a": "a"}, True),
        ({"a": {"$lt": "b"}}, {"a": 0}, False),
        ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
        ({"a": {"$nin": [1, 2]}}, {"a": 2}, False),
        ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
        ({"a": 1, "b": 2}, {"a": 1}, False),
    ],
)
def test_matches(raw: Any, metadata: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(raw), metadata) is expected
