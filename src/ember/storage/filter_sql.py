"""Translate :mod:`ember.filters` trees into SQL over a JSON metadata column.

The semantics match :func:`ember.filters.matches` exactly: values compare only with
values of the same kind, and a missing, null or non-scalar field satisfies only ``$ne`` and
``$nin``. SQLite uses ``json_type``/``json_extract``; Postgres uses ``jsonb_typeof`` and
``->``/``->>`` on JSONB.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import JSONB

from ember.filters import And, Condition, Filter, Or, Scalar

__all__ = ["filter_clause"]

_SQL_OPS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "num"


def _sqlite_equal_or_order(column: Any, field: str, op: str, value: Scalar) -> ColumnElement[bool]:
    path = f'$."{field}"'
    kind = func.json_type(column, path)
    extracted = func.json_extract(column, path)
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    expected = ("integer", "real") if _kind(value) == "num" else ("text",)
    return and_(kind.in_(expected), extracted.op(op)(literal(value)))


def _postgres_equal_or_order(
    column: Any, field: str, op: str, value: Scalar
) -> ColumnElement[bool]:
    element = column.op("->")(literal(field))
    kind = func.jsonb_typeof(element)
    expected = {"bool": "boolean", "num": "number", "str": "string"}[_kind(value)]
    return and_(kind == expected, element.op(op)(cast(literal(json.dumps(value)), JSONB)))


def _condition(column: Any, dialect: str, node: Condition) -> ColumnElement[bool]:
    positive = _SQL_OPS.get(node.op) or "="
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    build = _sqlite_equal_or_order if dialect == "sqlite" else _postgres_equal_or_order
    clause = or_(*(build(column, node.field, positive, v) for v in values))
    clause = func.coalesce(clause, false())
    return not_(clause) if node.op in ("$ne", "$nin") else clause


def filter_clause(column: Any, dialect: str, node: Filter | None) -> ColumnElement[bool]:
    """A WHERE clause testing ``column`` (JSON metadata) against ``node``; ``None`` is TRUE."""
    if node is None:
        return true()
    if isinstance(node, And):
        return and_(*(filter_clause(column, dialect, item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(filter_clause(column, dialect, item) for item in node.items))
    return _condition(column, dialect, node)
