"""The fake clock of the suite: time that moves only when the test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A monotonic clock the test moves by hand, and a wall clock that moves with it.

    Calling the clock (or :meth:`monotonic`) reads ``now``, in seconds; pass it wherever code
    takes a ``clock: Callable[[], float]``. :meth:`wall` is the matching aware UTC datetime,
    ``wall`` at the start plus the seconds moved since, for code that takes a
    ``Callable[[], datetime]``. Move time with :meth:`advance` or by setting ``now``.
    """

    def __init__(self, now: float = 1000.0, wall: datetime = WALL) -> None:
        self.now = now
        self._start = now
        self._wall = wall

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self._wall + timedelta(seconds=self.now - self._start)

    def advance(self, seconds: float) -> None:
        self.now += seconds
