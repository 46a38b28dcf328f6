"""Token buckets per principal, on a fake clock."""

from __future__ import annotations

import pytest

from ember.auth import RateLimiter
from ember.errors import RateLimited
from tests.support.clock import FakeClock


def test_burst_then_refused_with_the_wait_then_refilled(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.check("ci")
    with pytest.raises(RateLimited) as caught:
        limiter.check("ci")
    assert caught.value.retry_after_s == pytest.approx(0.5)
    assert caught.value.headers["Retry-After"] == "1"
    assert caught.value.extra["retry_after_s"] == 1
    clock.now += 0.5
    limiter.check("ci")
    with pytest.raises(RateLimited):
        limiter.check("ci")


def test_refused_requests_do_not_consume(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 1, clock=clock)
    limiter.check("ci")
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.check("ci")
    clock.now += 1.0
    limiter.check("ci")


def test_retry_after_is_rounded_up_to_whole_seconds(clock: FakeClock) -> None:
    limiter = RateLimiter(0.25, 1, clock=clock)
    limiter.check("slow")
    clock.now += 1.0
    with pytest.raises(RateLimited) as caught:
        limiter.check("slow")
    assert caught.value.retry_after_s == pytest.approx(3.0)
    assert caught.value.headers["Retry-After"] == "3"


def test_principals_have_their_own_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 2, clock=clock)
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimited, match="'a' is over its rate limit"):
        limiter.check("a")
    limiter.check("b")
    limiter.check("b")


def test_idle_buckets_are_dropped_once_full(clock: FakeClock) -> None:
    limiter = RateLimiter(10.0, 5, clock=clock)
    for name in ["a", "b", "c"]:
        limiter.check(name)
    assert len(limiter) == 3
    clock.now += 0.4
    limiter.check("d")
    assert len(limiter) == 4
    clock.now += 0.1
    limiter.check("d")
    assert len(limiter) == 1


def test_bucket_count_is_capped(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, 5, clock=clock, max_buckets=3)
    for index in range(10):
        limiter.check(f"p{index}")
    assert len(limiter) == 3


def test_zero_rate_turns_limiting_off(clock: FakeClock) -> None:
    limiter = RateLimiter(0.0, 1, clock=clock)
    assert not limiter.enabled
    for _ in range(100):
        limiter.check("ci")
    assert len(limiter) == 0


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, 1), (1.0, 0)])
def test_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate, burst)
