"""The circuit breaker's edges, with a hand-moved clock."""

from __future__ import annotations

import pytest

from ember.providers.breaker import BreakerState, CircuitBreaker
from tests.support.clock import FakeClock


def test_opens_after_n_failures_in_a_row(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=3, open_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s() == 10


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=2, open_s=10, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_trial_through_and_closes_on_success(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=1, open_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "a second call while the trial runs"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_a_failed_trial_opens_again_for_the_whole_duration(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=1, open_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_closing_can_need_several_successes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=1, open_s=5, successes=2, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_release_frees_the_trial_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=1, open_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


@pytest.mark.parametrize(
    "settings", [{"failures": 0}, {"successes": 0}, {"open_s": 0}, {"open_s": -1}]
)
def test_bad_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(**settings)  # type: ignore[arg-type]
