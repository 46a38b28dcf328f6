"""The plain embedding pool over in-process workers: routing, queue depth, scaling with a
hand-moved clock, extras that load, fail or come late, dead workers, close, and threads.

Calls that must stay in flight are held in their worker (:meth:`LocalWorkers.hold`) and run in
threads; a test waits for them to reach the worker before it looks (a liveness bound, never
a timed assertion)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from ember.errors import ProviderError, ProviderUnavailable
from ember.placement.scaling import ScalingPolicy
from ember.providers import PooledEmbedder
from ember.testing.embedder import EmbedderContract
from tests.providers.local_workers import (
    DIM,
    WAIT_S,
    HashEmbedder,
    LocalWorker,
    LocalWorkers,
)
from tests.support.clock import FakeClock

Pool = PooledEmbedder[LocalWorker]


class Call(threading.Thread):
    """One pool call in a thread of its own; keeps what it returned or raised, and the worker
    it reached (when the test waited for it)."""

    def __init__(self, send: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._send = send
        self.result: Any = None
        self.error: BaseException | None = None
        self.worker: LocalWorker | None = None

    def run(self) -> None:
        try:
            self.result = self._send()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> Any:
        """Join; the call's result, or what it raised, raised again."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def _held_call(
    pool: Pool, workers: LocalWorkers, expect: LocalWorker | None = None, text: str = "q"
) -> Call:
    """A query sent to ``pool``, started and waited for until it is in a (held) worker:
    ``expect``, when given."""
    call = Call(lambda: pool.embed_query(text))
    call.start()
    assert call.ident is not None
    call.worker = workers.wait_arrived(call.ident)
    assert call.worker is not None, "the call reached no worker"
    if expect is not None:
        assert call.worker is expect, f"the call went to {call.worker.name}, not {expect.name}"
    return call


def _two_calls_held_in(pool: Pool, workers: LocalWorkers, worker: LocalWorker) -> list[Call]:
    """Two queries waiting in ``worker``, which holds them: demand 2 on a one-worker pool."""
    workers.hold(worker)
    return [_held_call(pool, workers, worker) for _ in range(2)]


def _release(workers: LocalWorkers, worker: LocalWorker, calls: list[Call]) -> None:
    """Let ``worker`` answer and wait until every one of ``calls`` has its answer."""
    workers.release(worker)
    for call in calls:
        call.finish()


def _eventually(predicate: Callable[[], bool]) -> bool:
    """Whether ``predicate`` comes true while the pool's own threads run (a liveness bound
    of ``WAIT_S``, not a timing)."""
    pause = threading.Event()
    for _ in range(int(WAIT_S / 0.005)):
        if predicate():
            return True
        pause.wait(0.005)
    return predicate()


@pytest.fixture
def workers(clock: FakeClock) -> LocalWorkers:
    return LocalWorkers(clock, load_timeout_s=30.0)


@pytest.fixture
def make_pool(workers: LocalWorkers, clock: FakeClock) -> Iterator[Callable[..., Pool]]:
    """Builds pools over ``workers`` (no tick unless asked) and closes them after the test."""
    made: list[Pool] = []

    def make(
        low: int = 1, high: int = 3, *, per: float = 1.0, cooldown: float = 10.0, tick_s=None
    ) -> Pool:
        policy = ScalingPolicy(low, high, per, cooldown, clock=clock)
        pool = PooledEmbedder(workers, policy, tick_s=tick_s)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        for worker in workers.started:
            workers.release(worker)
        pool.close()


class TestPooledEmbedderContract(EmbedderContract):
    @pytest.fixture
    def embedder(self, make_pool: Callable[..., Pool]) -> Pool:
        return make_pool(2, 2)


def test_the_first_workers_start_together_and_name_the_vectors(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(2, 4)
    assert [worker.name for worker in workers.started] == ["w0", "w1"]
    assert pool.size == 2 and pool.queue_depth == 0
    assert pool.model_id == HashEmbedder.model_id and pool.dim == DIM
    assert [(w["name"], w["extra"], w["in_flight"]) for w in pool.workers()] == [
        ("w0", False, 0),
        ("w1", False, 0),
    ]


def test_a_pool_needs_a_worker(workers: LocalWorkers, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        PooledEmbedder(workers, ScalingPolicy(0, 2, 1.0, 0.0, clock=clock), tick_s=None)
    assert workers.started == []


def test_a_failed_start_leaves_nothing_and_closes_the_workers(clock: FakeClock) -> None:
    workers = LocalWorkers(clock, start_error=ProviderUnavailable("no room"))
    with pytest.raises(ProviderUnavailable, match="no room"):
        PooledEmbedder(workers, ScalingPolicy(2, 2, 1.0, 0.0, clock=clock), tick_s=None)
    assert workers.closes == 1 and workers.running() == []


def test_calls_alternate_between_idle_workers_by_calls_sent(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(2, 2)
    for _ in range(3):
        pool.embed_query("q")
    assert [workers.first(0).calls, workers.first(1).calls] == [2, 1]
    pool.embed_documents(["a", "b"])
    assert [workers.first(0).calls, workers.first(1).calls] == [2, 2]


def test_the_fewest_calls_in_flight_win_over_the_fewest_sent(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(2, 2)
    w0, w1 = workers.first(0), workers.first(1)
    workers.hold(w0)
    held = _held_call(pool, workers, w0)
    for _ in range(3):  # w0 has one in flight: every call goes to w1, whatever it was sent
        pool.embed_query("q")
    assert (w0.calls, w1.calls) == (1, 3)
    workers.release(w0)
    held.finish()
    for _ in range(2):  # both idle now: w0 was sent fewer
        pool.embed_query("q")
    assert (w0.calls, w1.calls) == (3, 3)


def test_calls_in_flight_are_the_queue_depth(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 1)
    w0 = workers.first(0)
    workers.hold(w0)
    calls = [_held_call(pool, workers, w0, text) for text in ("a", "b", "c")]
    assert pool.queue_depth == 3
    assert pool.workers()[0]["in_flight"] == 3
    workers.release(w0)
    results = [call.finish() for call in calls]
    assert pool.queue_depth == 0 and pool.workers()[0]["in_flight"] == 0
    expected = HashEmbedder()
    for text, vector in zip(("a", "b", "c"), results, strict=True):
        np.testing.assert_allclose(vector, expected.embed_query(text))


def test_the_pool_grows_at_once_and_an_extra_joins_once_loaded(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 3)
    w0 = workers.first(0)
    workers.hold(w0)
    first = _held_call(pool, workers, w0)
    assert pool.size == 1 and workers.extras() == []
    second = _held_call(pool, workers, w0)  # no clock moved: demand 2 asks for 2 at once
    (x1,) = workers.extras()
    assert pool.size == 2
    assert [w["name"] for w in pool.workers()] == ["w0"], "a starting extra serves no call"
    assert pool.rescale() == 2
    assert [(w["name"], w["extra"]) for w in pool.workers()] == [("w0", False), ("x1", True)]
    pool.embed_query("q")  # w0 has two in flight: the extra serves it
    assert x1.calls == 1 and w0.calls == 2
    workers.release(w0)
    first.finish()
    second.finish()


def test_the_pool_grows_no_further_than_its_maximum(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 2)
    w0 = workers.first(0)
    workers.hold(w0)
    calls = [_held_call(pool, workers, w0) for _ in range(3)]  # the third joins x1
    (x1,) = workers.extras()
    workers.hold(x1)
    calls += [_held_call(pool, workers, x1) for _ in range(2)]
    assert pool.queue_depth == 5
    assert pool.rescale() == 2 and len(workers.extras()) == 1
    workers.release(w0, x1)
    for call in calls:
        call.finish()


def _grow_to_three(pool: Pool, workers: LocalWorkers) -> tuple[LocalWorker, ...]:
    """Grow the pool to w0 and two loaded extras, every call finished."""
    w0 = workers.first(0)
    workers.hold(w0)
    calls = [_held_call(pool, workers, w0) for _ in range(3)]
    assert pool.rescale() == 3
    _release(workers, w0, calls)
    x1, x2 = workers.extras()
    assert [w["name"] for w in pool.workers()] == ["w0", "x1", "x2"]
    return w0, x1, x2


def test_the_pool_shrinks_only_after_the_cooldown_and_only_idle_extras(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(1, 3, cooldown=10.0)
    w0, x1, x2 = _grow_to_three(pool, workers)
    workers.hold(w0, x1, x2)
    held = [_held_call(pool, workers) for _ in range(3)]
    calls = {call.worker.name: call for call in held if call.worker is not None}
    assert sorted(calls) == ["w0", "x1", "x2"], "one call on each"
    assert [w["in_flight"] for w in pool.workers()] == [1, 1, 1]
    workers.release(w0, x1)
    calls["w0"].finish()
    calls["x1"].finish()
    assert pool.queue_depth == 1  # only x2, the newest extra, is busy
    clock.advance(9.0)
    assert pool.rescale() == 3, "demand fell less than the cooldown ago"
    assert workers.discarded == []
    clock.advance(2.0)
    assert pool.rescale() == 2, "the busy extra stays"
    assert workers.discarded == [x1]
    assert [w["name"] for w in pool.workers()] == ["w0", "x2"]
    workers.release(x2)
    calls["x2"].finish()
    clock.advance(11.0)
    assert pool.rescale() == 1
    assert workers.discarded == [x1, x2]
    assert [(w["name"], w["extra"]) for w in pool.workers()] == [("w0", False)]


class _Shrinking:
    """A policy that keeps two workers yet always asks for one."""

    min_size = 2

    def desired(self, current: int, demand: int) -> int:
        return 1


def test_only_extras_are_removed_whatever_the_policy_says(workers: LocalWorkers) -> None:
    with PooledEmbedder(workers, _Shrinking(), tick_s=None) as pool:
        assert pool.rescale() == 2
        assert workers.discarded == [] and [w["name"] for w in pool.workers()] == ["w0", "w1"]
        assert pool.embed_query("q").shape == (DIM,)


def test_a_failed_extra_is_dropped_and_asked_for_again(
    make_pool: Callable[..., Pool], workers: LocalWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(1, 2)
    workers.plans = ["fail"]
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    (x1,) = workers.extras()
    with caplog.at_level(logging.WARNING, logger="ember.providers.pooled_embedder"):
        assert pool.rescale() == 2
    assert "x1 could not load the model" in caplog.text
    assert workers.discarded == [x1]
    assert [w.name for w in workers.extras()] == ["x1", "x2"], "demand is still 2: a new one"
    assert pool.rescale() == 2
    assert [w["name"] for w in pool.workers()] == ["w0", "x2"]
    _release(workers, w0, calls)


def test_a_slow_extra_joins_once_it_has_loaded(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(1, 2)
    workers.plans = ["slow"]
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    (x1,) = workers.extras()
    clock.advance(29.0)
    assert pool.rescale() == 2
    assert [w["name"] for w in pool.workers()] == ["w0"] and workers.discarded == []
    workers.finish_loading(x1)
    assert pool.rescale() == 2
    assert [w["name"] for w in pool.workers()] == ["w0", "x1"]
    assert len(workers.extras()) == 1
    _release(workers, w0, calls)


def test_an_extra_past_its_deadline_is_dropped_and_asked_for_again(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(1, 2)
    workers.plans = ["slow"]
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    (x1,) = workers.extras()
    clock.advance(31.0)
    assert pool.rescale() == 2
    assert workers.discarded == [x1]
    assert [w.name for w in workers.extras()] == ["x1", "x2"]
    assert pool.rescale() == 2
    assert [w["name"] for w in pool.workers()] == ["w0", "x2"]
    _release(workers, w0, calls)


def test_a_starting_extra_is_removed_when_demand_falls(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(1, 2, cooldown=0.0)
    workers.plans = ["slow"]
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    (x1,) = workers.extras()
    _release(workers, w0, calls)
    clock.advance(1.0)
    assert pool.rescale() == 1
    assert workers.discarded == [x1] and workers.running() == [w0]


def test_a_dead_workers_call_raises_provider_unavailable(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 1)
    w0 = workers.first(0)
    workers.hold(w0)
    held = _held_call(pool, workers, w0)
    workers.kill(w0)
    with pytest.raises(ProviderUnavailable, match="w0 is dead"):
        held.finish()
    with pytest.raises(ProviderUnavailable, match="w0 is dead"):
        pool.embed_documents(["a"])
    assert pool.queue_depth == 0


def test_a_workers_error_reaches_the_caller_and_the_call_is_counted_out(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 1)
    workers.fail_next_call(workers.first(0), ProviderError("the model failed"))
    with pytest.raises(ProviderError, match="the model failed"):
        pool.embed_query("q")
    assert pool.queue_depth == 0
    assert pool.embed_query("q").shape == (DIM,)


def test_one_str_is_not_a_batch_and_no_texts_need_no_worker(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 1)
    with pytest.raises(TypeError, match="not one str"):
        pool.embed_documents("one text")
    assert pool.embed_documents([]).shape == (0, DIM)
    assert workers.first(0).calls == 0


def test_close_is_idempotent_and_fails_calls_in_flight_and_after(
    make_pool: Callable[..., Pool], workers: LocalWorkers
) -> None:
    pool = make_pool(1, 2)
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    assert len(workers.extras()) == 1
    pool.close()
    for call in calls:
        with pytest.raises(ProviderUnavailable, match="w0 is discarded"):
            call.finish()
    assert workers.running() == [] and workers.closes == 1
    assert pool.size == 0 and pool.queue_depth == 0 and pool.workers() == []
    pool.close()
    assert workers.closes == 2 and len(workers.discarded) == 2
    with pytest.raises(ProviderUnavailable, match="closed"):
        pool.embed_query("q")
    with pytest.raises(ProviderUnavailable, match="closed"):
        pool.embed_documents(["a"])
    assert pool.rescale() == 0 and len(workers.started) == 2


def test_the_context_manager_closes_the_pool(workers: LocalWorkers, clock: FakeClock) -> None:
    policy = ScalingPolicy(1, 1, 1.0, 0.0, clock=clock)
    with PooledEmbedder(workers, policy, tick_s=None) as pool:
        assert pool.embed_query("q").shape == (DIM,)
    assert workers.running() == [] and workers.closes == 1


def test_the_tick_rescales_without_calls_and_stops_on_close(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(1, 2, cooldown=10.0, tick_s=0.005)
    w0 = workers.first(0)
    calls = _two_calls_held_in(pool, workers, w0)
    # from here on the test calls nothing that rescales: only the tick does
    assert _eventually(lambda: len(pool.workers()) == 2), "the tick never joined the extra"
    assert [w["name"] for w in pool.workers()] == ["w0", "x1"]
    _release(workers, w0, calls)
    clock.advance(11.0)
    assert _eventually(lambda: pool.size == 1), "the tick never shrank the idle pool"
    assert workers.discarded == workers.extras()
    ticks = [t for t in threading.enumerate() if t.name == "ember-embedding-pool"]
    assert len(ticks) == 1
    pool.close()
    assert not ticks[0].is_alive()


def test_concurrent_calls_from_threads_are_all_served_and_counted(
    make_pool: Callable[..., Pool], workers: LocalWorkers, clock: FakeClock
) -> None:
    pool = make_pool(2, 4, cooldown=1000.0, tick_s=0.001)
    texts = [f"text number {index} about rivers and mountains" for index in range(25)]
    expected = HashEmbedder().embed_documents(texts)
    errors: list[BaseException] = []
    results: list[bool] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        try:
            for index in range(len(texts)):
                position = (index + offset) % len(texts)
                if index % 2:
                    vector = pool.embed_query(texts[position])
                else:
                    vector = pool.embed_documents([texts[position], texts[position]])[1]
                with lock:
                    results.append(bool(np.allclose(vector, expected[position])))
                clock.advance(0.5)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    workers.hold(workers.first(0), workers.first(1))
    workers.hold_extras = True
    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    try:  # every first call is held: demand 8 grows the pool to its maximum
        assert _eventually(lambda: pool.queue_depth == 8)
        assert _eventually(lambda: len(pool.workers()) == 4), "the tick joins the extras"
    finally:
        workers.hold_extras = False
        workers.release(*workers.started)
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(results) == 8 * len(texts) and all(results)
    assert sum(worker.calls for worker in workers.started) == 8 * len(texts)
    assert all(extra.calls > 0 for extra in workers.extras()), "the extras served calls"
    assert pool.queue_depth == 0 and all(w["in_flight"] == 0 for w in pool.workers())
    assert len(workers.extras()) == 2 and workers.discarded == []
    clock.advance(2000.0)
    assert pool.rescale() == 2
    assert [w["name"] for w in pool.workers()] == ["w0", "w1"]
