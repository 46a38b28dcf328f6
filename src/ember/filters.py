"""Metadata filters: one grammar for every candidate search (vector indexes and keyword SQL).

A filter is JSON::

    {"lang": "en"}                                 equality
    {"year": {"$gte": 2020, "$lt": 2024}}          comparison ($eq $ne $gt $gte $lt $lte)
    {"tag": {"$in": ["a", "b"]}}                   membership ($in $nin)
    {"$or": [{"lang": "en"}, {"lang": "de"}]}      boolean ($and $or), nested freely

Keys of one object are ANDed. Field names are metadata keys (``[A-Za-z_][A-Za-z0-9_.-]*``, at
most 64 characters); values are strings (without NUL), integers (64-bit, as every database
stores them), finite floats or booleans, compared only with values of the same kind (numbers
with numbers). Only scalar metadata values are filterable: a field that is missing, null, a
list or an object matches no condition except ``$ne`` and ``$nin``.

A filter is bounded, so no request can build a query the database refuses: at most
:data:`MAX_DEPTH` levels of ``$and``/``$or``, and at most ``max_terms`` terms in all (each
compared value is one term, each value of ``$in``/``$nin`` too; ``memory.max_filter_terms``
sets it, :data:`MAX_TERMS` by default, never above :data:`MAX_TERMS_CEILING`).

:func:`parse_filter` turns the JSON into a tree of :class:`Condition`, :class:`And` and
:class:`Or` that adapters translate into their native filter language; :func:`matches`
evaluates it in Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ember.errors import InvalidFilter

__all__ = [
    "COMPARISONS",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DEPTH",
    "MAX_TERMS",
    "MAX_TERMS_CEILING",
    "And",
    "Condition",
    "Filter",
    "Or",
    "Scalar",
    "matches",
    "parse_filter",
]

Scalar = str | int | float | bool
Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"]
COMPARISONS: tuple[Operator, ...] = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 8
"""Most levels of ``$and``/``$or`` nesting."""
MAX_TERMS = 256
"""Most terms in one filter unless ``memory.max_filter_terms`` says otherwise."""
MAX_TERMS_CEILING = 512
"""The most terms any configuration may allow: a query this wide stays within what SQLite
(an expression at most 1000 deep) and Postgres accept."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``field <op> value``; ``value`` is a tuple of scalars for ``$in`` and ``$nin``."""

    field: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class And:
    """Every item matches."""

    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one item matches."""

    items: tuple[Filter, ...]


Filter = Condition | And | Or


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidFilter(f"{where}: integers must fit in 64 bits (-2^63 to 2^63-1)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter(f"{where}: numbers must be finite, got {value!r}")
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidFilter(f"{where}: strings may not contain NUL characters")
        return value
    raise InvalidFilter(f"{where}: expected a string, number or boolean, got {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Budget:
    """The terms a filter may still use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise InvalidFilter(
                f"the filter has more than {self.limit} terms (each compared value counts, each "
                "value of $in/$nin too); the limit is memory.max_filter_terms"
            )


def _field(name: Any) -> str:
    if not isinstance(name, str) or not _FIELD.fullmatch(name):
        raise InvalidFilter(f"invalid field name {_show(name)}")
    return name


def _parse(node: Any, depth: int, budget: _Budget) -> Filter:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"the filter nests $and/$or deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping) or not node:
        raise InvalidFilter(f"a filter must be a non-empty object, got {_show(node)}")
    items: list[Filter] = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{key} takes a non-empty list of filters")
            children = tuple(_parse(child, depth + 1, budget) for child in value)
            items.append(And(children) if key == "$and" else Or(children))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidFilter(f"unknown operator {_show(key)} (use $and or $or at this level)")
        else:
            items.extend(_conditions(_field(key), value, budget))
    return items[0] if len(items) == 1 else And(tuple(items))


def _conditions(field: str, value: Any, budget: _Budget) -> list[Filter]:
    if not isinstance(value, Mapping):
        budget.take(1)
        return [Condition(field, "$eq", _scalar(value, field))]
    if not value:
        raise InvalidFilter(f"{field}: empty operator object")
    found: list[Filter] = []
    for op, operand in value.items():
        if op not in COMPARISONS:
            raise InvalidFilter(f"{field}: unknown operator {_show(op)}; use one of {COMPARISONS}")
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise InvalidFilter(f"{field}.{op} takes a non-empty list")
            budget.take(len(operand))
            found.append(Condition(field, op, tuple(_scalar(v, f"{field}.{op}") for v in operand)))
        else:
            budget.take(1)
            scalar = _scalar(operand, f"{field}.{op}")
            if op in ("$gt", "$gte", "$lt", "$lte") and isinstance(scalar, bool):
                raise InvalidFilter(f"{field}.{op}: cannot order booleans")
            found.append(Condition(field, op, scalar))
    return found


def parse_filter(node: Any, *, max_terms: int = MAX_TERMS) -> Filter | None:
    """Parse filter JSON; ``None`` or ``{}`` means no filter.

    :param max_terms: the most terms the filter may have (see the module docstring).
    :raises InvalidFilter: the JSON does not follow the grammar above, or passes a limit; the
        message says where, or which limit.
    """
    if node is None or (isinstance(node, Mapping) and not node):
        return None
    return _parse(node, 0, _Budget(max_terms))


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str)
    return isinstance(a, int | float) and isinstance(b, int | float)


def _compare(op: Operator, actual: Any, expected: Any) -> bool:
    if op in ("$in", "$nin"):
        present = any(_same_kind(actual, v) and actual == v for v in expected)
        return present if op == "$in" else not present
    if op == "$ne":
        return not (_same_kind(actual, expected) and actual == expected)
    if not _same_kind(actual, expected):
        return False
    if op == "$eq":
        return bool(actual == expected)
    if op == "$gt":
        return bool(actual > expected)
    if op == "$gte":
        return bool(actual >= expected)
    if op == "$lt":
        return bool(actual < expected)
    return bool(actual <= expected)


_MISSING = object()


def matches(node: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies the filter (``None`` matches everything)."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(item, metadata) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, metadata) for item in node.items)
    actual = metadata.get(node.field, _MISSING)
    if actual is _MISSING or actual is None:
        return node.op in ("$ne", "$nin")
    return _compare(node.op, actual, node.value)
