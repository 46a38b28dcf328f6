"""Metadata filters compiled to SQL select what the Python matcher selects, on both
databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ember.filters import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_TERMS_CEILING,
    matches,
    parse_filter,
)
from ember.storage import Database, SqlVersionStore
from ember.storage.filter_sql import filter_clause
from ember.storage.tables import Chunk, Document
from tests.storage.conftest import vectors, version

pytestmark = pytest.mark.slow


ROWS: list[dict[str, Any]] = [
    {"lang": "en", "year": 2020, "score": 0.5, "ok": True},
    {"lang": "de", "year": 2021, "score": 1.5, "ok": False},
    {"lang": "en", "year": 2019},
    {"year": "2020", "tags": ["a"]},
    {},
]
FILTERS: list[Any] = [
    {"lang": "en"},
    {"lang": {"$ne": "en"}},
    {"year": {"$gte": 2020}},
    {"year": {"$gt": 2019, "$lt": 2021}},
    {"year": 2020},
    {"year": "2020"},
    {"score": {"$lte": 1.0}},
    {"ok": True},
    {"ok": {"$ne": True}},
    {"lang": {"$in": ["de", "fr"]}},
    {"lang": {"$nin": ["de"]}},
    {"tags": "a"},
    {"tags": {"$ne": "a"}},
    {"$or": [{"lang": "de"}, {"year": {"$lt": 2020}}]},
    {"$and": [{"lang": "en"}, {"$or": [{"ok": True}, {"year": 2019}]}]},
    {"missing": {"$nin": [1, 2]}},
]


def assert_sql_agrees(
    versions: SqlVersionStore, collection_id: str, database: Database, tree: Any
) -> None:
    """The rows of ``ROWS`` the SQL of ``tree`` selects are those ``matches`` selects."""
    for i, metadata in enumerate(ROWS):
        versions.write_version(
            collection_id, version(f"r{i}", f"row {i}", **metadata), vectors(1), "m"
        )
    clause = filter_clause(Chunk.meta, database.dialect, tree)
    got = database.run(
        lambda s: sorted(
            source for (source,) in s.execute(select(Document.source).join(Chunk).where(clause))
        )
    )
    expected = sorted(
        f"r{i}" for i, m in enumerate(ROWS) if matches(tree, {**m, "source": f"r{i}"})
    )
    assert got == expected


@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_sql_filters_agree_with_python(
    versions: SqlVersionStore, collection_id: str, database: Database, raw: Any
) -> None:
    assert_sql_agrees(versions, collection_id, database, parse_filter(raw))


def _widest() -> list[Any]:
    """Filters as wide and deep as any configuration allows, and 64-bit edge values."""
    values = list(range(MAX_TERMS_CEILING))
    nested: dict[str, Any] = {"year": {"$in": values[: MAX_TERMS_CEILING - MAX_DEPTH]}}
    for level in range(MAX_DEPTH):
        nested = {"$or": [nested, {"year": -level}]}
    return [
        {"year": {"$in": values}},
        {"year": {"$nin": values}},
        {"$or": [{"year": v} for v in values]},
        {"$and": [{"year": {"$ne": v}} for v in values]},
        nested,
        {"year": {"$lt": INT64_MAX}},
        {"year": {"$gt": INT64_MIN, "$ne": 1e308}},
    ]


@pytest.mark.parametrize("raw", _widest(), ids=range(len(_widest())))
def test_the_widest_allowed_filters_run_on_the_database(
    versions: SqlVersionStore, collection_id: str, database: Database, raw: Any
) -> None:
    tree = parse_filter(raw, max_terms=MAX_TERMS_CEILING)
    assert_sql_agrees(versions, collection_id, database, tree)
