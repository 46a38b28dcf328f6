"""The memory and context plane: ingest, retrieval, filters and context packing."""

from ember.filters import And, Condition, Filter, Or, matches, parse_filter

__all__ = ["And", "Condition", "Filter", "Or", "matches", "parse_filter"]
