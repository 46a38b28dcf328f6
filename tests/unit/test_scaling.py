"""ScalingPolicy: up at once, down only after a quiet cooldown, always within the bounds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ember.placement.scaling import ScalingPolicy
from tests.support.clock import FakeClock


def policy(clock: FakeClock, **overrides: float) -> ScalingPolicy:
    options: dict[str, float] = {
        "min_size": 1,
        "max_size": 4,
        "target_per_worker": 2,
        "cooldown_s": 30,
    }
    options.update(overrides)
    return ScalingPolicy(
        int(options["min_size"]),
        int(options["max_size"]),
        options["target_per_worker"],
        options["cooldown_s"],
        clock=clock,
    )


@pytest.mark.parametrize(
    ("demand", "expected"),
    [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 4), (9, 4), (1000, 4)],
)
def test_scales_up_at_once_to_ceil_demand_over_target_within_bounds(
    clock: FakeClock, demand: int, expected: int
) -> None:
    assert policy(clock).desired(1, demand) == expected


def test_a_fractional_target_is_not_thrown_off_by_float_rounding(clock: FakeClock) -> None:
    assert policy(clock, target_per_worker=0.7, max_size=100).desired(1, 7) == 10
    assert policy(clock, target_per_worker=0.1, max_size=100).desired(1, 3) == 30


def test_never_below_min_and_never_above_max(clock: FakeClock) -> None:
    scaling = policy(clock, min_size=2, max_size=3, cooldown_s=0)
    assert scaling.desired(0, 0) == 2
    assert scaling.desired(5, 0) == 2
    assert scaling.desired(3, 100) == 3
    assert policy(clock, min_size=2, max_size=3).desired(7, 100) == 3


def test_a_size_above_max_is_cut_at_once_even_while_cooling_down(clock: FakeClock) -> None:
    assert policy(clock, max_size=3).desired(6, 0) == 3


def test_scales_down_only_after_the_cooldown(clock: FakeClock) -> None:
    scaling = policy(clock)
    assert scaling.desired(1, 8) == 4
    assert scaling.desired(4, 0) == 4
    clock.advance(29.9)
    assert scaling.desired(4, 0) == 4
    clock.advance(0.1)
    assert scaling.desired(4, 0) == 1
    assert scaling.desired(1, 0) == 1


def test_a_rise_in_demand_restarts_the_cooldown(clock: FakeClock) -> None:
    scaling = policy(clock)
    assert scaling.desired(4, 0) == 4
    clock.advance(20)
    assert scaling.desired(4, 1) == 4
    clock.advance(20)
    assert scaling.desired(4, 0) == 4, "the rise at 20 s restarted the 30 s wait"
    clock.advance(10)
    assert scaling.desired(4, 0) == 1


def test_a_rise_that_needs_the_current_size_ends_the_quiet_period(clock: FakeClock) -> None:
    scaling = policy(clock)
    assert scaling.desired(4, 0) == 4
    clock.advance(25)
    assert scaling.desired(4, 8) == 4
    clock.advance(10)
    assert scaling.desired(4, 0) == 4
    clock.advance(29)
    assert scaling.desired(4, 0) == 4
    clock.advance(1)
    assert scaling.desired(4, 0) == 1


def test_a_falling_demand_steps_down_as_each_size_has_been_enough_long_enough(
    clock: FakeClock,
) -> None:
    scaling = policy(clock)
    assert scaling.desired(3, 6) == 3
    assert scaling.desired(3, 4) == 3
    clock.advance(10)
    assert scaling.desired(3, 0) == 3
    clock.advance(20)
    assert scaling.desired(3, 0) == 2, "2 workers have been enough for 30 s, 1 only for 20 s"
    clock.advance(9)
    assert scaling.desired(2, 0) == 2
    clock.advance(1)
    assert scaling.desired(2, 0) == 1


def test_a_zero_cooldown_scales_down_at_once(clock: FakeClock) -> None:
    assert policy(clock, cooldown_s=0).desired(4, 2) == 1


def test_a_pool_that_lags_behind_keeps_getting_the_lower_size(clock: FakeClock) -> None:
    scaling = policy(clock)
    assert scaling.desired(4, 0) == 4
    clock.advance(30)
    assert scaling.desired(4, 0) == 1
    clock.advance(1)
    assert scaling.desired(3, 0) == 1, "three workers were busy; the answer stands"


def test_a_min_of_zero_scales_to_zero_and_back(clock: FakeClock) -> None:
    scaling = policy(clock, min_size=0, cooldown_s=5)
    assert scaling.desired(0, 0) == 0
    assert scaling.desired(0, 1) == 1
    assert scaling.desired(1, 0) == 1
    clock.advance(5)
    assert scaling.desired(1, 0) == 0


def test_the_clock_defaults_to_monotonic_time() -> None:
    scaling = ScalingPolicy(1, 2, 1.0, 0.0)
    assert scaling.desired(2, 0) == 1


def test_the_settings_read_back() -> None:
    scaling = ScalingPolicy(1, 5, 2.5, 12.0)
    assert (scaling.min_size, scaling.max_size) == (1, 5)
    assert (scaling.target_per_worker, scaling.cooldown_s) == (2.5, 12.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 4, 1.0, 1.0), "min_size must be 0 or more"),
        ((0, 0, 1.0, 1.0), "max_size must be 1 or more"),
        ((3, 2, 1.0, 1.0), r"max_size \(2\) is below min_size \(3\)"),
        ((1, 2, 0.0, 1.0), "target_per_worker must be above 0"),
        ((1, 2, float("nan"), 1.0), "target_per_worker must be above 0"),
        ((1, 2, float("inf"), 1.0), "target_per_worker must be above 0"),
        ((1, 2, 1.0, -1.0), "cooldown_s must be 0 or more"),
        ((1, 2, 1.0, float("inf")), "cooldown_s must be 0 or more"),
    ],
)
def test_bad_settings_are_refused(args: tuple[int, int, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScalingPolicy(*args)


def test_negative_inputs_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="current must be 0 or more"):
        policy(clock).desired(-1, 0)
    with pytest.raises(ValueError, match="demand must be 0 or more"):
        policy(clock).desired(1, -1)


def test_importing_the_policy_does_not_import_ray() -> None:
    code = (
        "import sys, ember.placement.scaling, ember.placement.requests; print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
