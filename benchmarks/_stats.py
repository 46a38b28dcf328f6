"""Statistics the benchmarks share.

A benchmark imports this as ``benchmarks._stats`` when it is imported or run with
``python -m benchmarks.X``, and as ``_stats`` when it is run as ``python benchmarks/X.py``
(then this folder, not the repository root, is on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["percentile"]


def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q`` quantile (``0 <= q <= 1``) of ``samples``: the sample at index
    ``round(q * (n - 1))`` of the sorted samples, no interpolation (Python's ``round``, halves
    to even), so ``percentile(s, 0.5)`` of an even count is one of the two middle samples, not
    their mean as ``statistics.median`` gives."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
