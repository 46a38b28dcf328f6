"""The filter grammar: parsing, errors that say where, and the Python semantics."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ember.config.models import MemoryConfig
from ember.errors import InvalidFilter
from ember.filters import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_TERMS,
    MAX_TERMS_CEILING,
    And,
    Condition,
    Or,
    matches,
    parse_filter,
)


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
        ({"a": float("nan")}, "must be finite"),
        ({"a": float("inf")}, "must be finite"),
        ({"a": {"$lt": float("-inf")}}, "a.$lt: numbers must be finite"),
        ({"a": 2**63}, "a: integers must fit in 64 bits"),
        ({"a": {"$in": [1, -(2**63) - 1]}}, "a.$in: integers must fit in 64 bits"),
        ({"a": "x\x00y"}, "NUL"),
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
    for _ in range(MAX_DEPTH):
        node = {"$and": [node]}
    assert parse_filter(node) is not None
    with pytest.raises(InvalidFilter, match=f"deeper than {MAX_DEPTH} levels"):
        parse_filter({"$or": [node]})


def test_64_bit_integers_and_big_floats_are_values() -> None:
    assert parse_filter({"a": INT64_MAX}) == Condition("a", "$eq", INT64_MAX)
    assert parse_filter({"a": {"$gte": INT64_MIN}}) == Condition("a", "$gte", INT64_MIN)
    assert parse_filter({"a": 1e308}) == Condition("a", "$eq", 1e308)


def test_every_compared_value_counts_against_the_width() -> None:
    assert parse_filter({"a": {"$in": list(range(MAX_TERMS))}}) is not None
    with pytest.raises(InvalidFilter) as caught:
        parse_filter({"a": {"$in": list(range(1200))}})
    assert f"more than {MAX_TERMS} terms" in caught.value.detail
    assert "memory.max_filter_terms" in caught.value.detail
    half = [{"a": {"$nin": list(range(MAX_TERMS // 2))}}]
    with pytest.raises(InvalidFilter, match="terms"):
        parse_filter({"$or": half, "$and": [*half, {"b": 1}]})
    with pytest.raises(InvalidFilter, match="more than 3 terms"):
        parse_filter({"$or": [{"a": 1}, {"b": 2}], "c": {"$gt": 1, "$lt": 5}}, max_terms=3)
    assert parse_filter({"$or": [{"a": 1}, {"b": 2}], "c": 3}, max_terms=3) is not None


def test_a_huge_value_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter({"a": ["x" * 10_000]})
    assert len(caught.value.detail) < 200


def test_the_configured_width_stays_within_the_ceiling() -> None:
    assert MemoryConfig().max_filter_terms == MAX_TERMS
    assert MemoryConfig(max_filter_terms=MAX_TERMS_CEILING).max_filter_terms == MAX_TERMS_CEILING
    with pytest.raises(ValidationError):
        MemoryConfig(max_filter_terms=MAX_TERMS_CEILING + 1)


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
