"""The wall clock ember stamps rows with and checks expiry against: timezone-aware UTC.

Code that reads the time takes a ``clock: Callable[[], datetime]`` defaulting to
:func:`utcnow`, so tests can pass a fake one (``tests/support/clock.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
