"""In-process workers of an embedding pool: the
:class:`~ember.providers.protocol.EmbeddingWorkers` seam without Ray, for tests of the pool
logic (:class:`~ember.providers.pooled_embedder.PooledEmbedder`).

A test double of ember's own seam (not a fake of an outside service). Each worker holds a
deterministic :class:`HashEmbedder`; the test can hold its calls (they wait until released,
so calls in flight stay in flight), plan how the next extras load (at once, slowly until told,
or not at all), make a worker's next call fail, or kill it. The deadline of a slow extra is
read from the test's clock. A call to a worker that is not loaded is a bug of the pool: it
raises :class:`AssertionError` in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ember.errors import ProviderError, ProviderUnavailable
from tests.support import embedders

__all__ = ["DIM", "HashEmbedder", "Load", "LocalWorker", "LocalWorkers"]

DIM = 256

Load = Literal["at once", "slow", "fail"]
"""How an extra loads: at its first check, only once :meth:`LocalWorkers.finish_loading` is
called (until its deadline), or never (its check raises ProviderError)."""

WAIT_S = 10.0
"""How long a test waits for its own threads to reach a worker (a liveness bound only)."""

HOLD_S = 3 * WAIT_S
"""How long a held call waits to be released before it fails (a test that never releases it,
or a pool that sent a call where the test did not expect it, fails instead of hanging)."""


class HashEmbedder(embedders.HashEmbedder):
    """The shared hashing embedder at this module's :data:`DIM`."""

    dim = DIM
    model_id = f"hash-bow-{DIM}"


@dataclass(eq=False)
class LocalWorker:
    """One worker and what the test sees of it."""

    name: str  # w0, w1, ... for the first; x1, x2, ... for extras in the order begun
    extra: bool
    deadline: float
    load: Load = "at once"
    state: Literal["starting", "loaded", "failed", "dead", "discarded"] = "starting"
    calls: int = 0  # calls that reached it
    inside: list[int] = field(default_factory=list)  # the threads of the calls in it now
    held: bool = False
    fail_next: Exception | None = None


class LocalWorkers:
    """The seam over :class:`LocalWorker` objects; thread-safe. ``clock`` is the deadline's
    clock; ``start_error`` makes :meth:`start` raise it."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        load_timeout_s: float = 30.0,
        start_error: Exception | None = None,
    ) -> None:
        self._clock = clock
        self._timeout_s = load_timeout_s
        self._start_error = start_error
        self._embedder = HashEmbedder()
        self._changed = threading.Condition()
        self.started: list[LocalWorker] = []
        """Every worker ever started, first ones and extras, in order."""
        self.discarded: list[LocalWorker] = []
        """Every worker discarded, in order."""
        self.plans: list[Load] = []
        """How the next extras load, in order; once used up, ``at once``."""
        self.hold_extras = False
        """Whether extras begun from now on hold their calls (as :meth:`hold`)."""
        self.closes = 0

    # the seam

    def start(self, count: int) -> list[LocalWorker]:
        with self._changed:
            if self._start_error is not None:
                raise self._start_error
            first = [
                LocalWorker(f"w{index}", extra=False, deadline=self._clock(), state="loaded")
                for index in range(count)
            ]
            self.started.extend(first)
            return list(first)

    def begin(self) -> LocalWorker:
        with self._changed:
            extras = sum(worker.extra for worker in self.started)
            load = self.plans.pop(0) if self.plans else "at once"
            worker = LocalWorker(
                f"x{extras + 1}",
                extra=True,
                deadline=self._clock() + self._timeout_s,
                load=load,
                held=self.hold_extras,
            )
            self.started.append(worker)
            return worker

    def loaded(self, worker: LocalWorker) -> bool:
        with self._changed:
            if worker.state == "loaded":
                return True
            if worker.state != "starting":
                raise ProviderUnavailable(f"embedding worker {worker.name} is {worker.state}")
            if worker.load == "fail":
                worker.state = "failed"
                raise ProviderError(f"embedding worker {worker.name} could not load the model")
            if worker.load == "at once":
                worker.state = "loaded"
                return True
            if self._clock() > worker.deadline:
                raise ProviderUnavailable(f"embedding worker {worker.name} missed its deadline")
            return False

    def embed(self, worker: LocalWorker, texts: list[str]) -> npt.NDArray[np.float32]:
        self._enter(worker)
        return self._embedder.embed_documents(texts)

    def embed_query(self, worker: LocalWorker, text: str) -> npt.NDArray[np.float32]:
        self._enter(worker)
        return self._embedder.embed_query(text)

    def info(self, worker: LocalWorker) -> dict[str, Any]:
        assert worker.state == "loaded", f"info of {worker.name}, which is {worker.state}"
        return {"name": worker.name, "model_id": self._embedder.model_id, "dim": DIM}

    def discard(self, workers: Sequence[LocalWorker]) -> None:
        with self._changed:
            for worker in workers:
                if worker.state != "discarded":
                    worker.state = "discarded"
                    self.discarded.append(worker)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closes += 1

    # what the test does

    def first(self, index: int) -> LocalWorker:
        """The ``index``-th of the first workers."""
        return [worker for worker in self.started if not worker.extra][index]

    def extras(self) -> list[LocalWorker]:
        """The extras begun so far, in order."""
        return [worker for worker in self.started if worker.extra]

    def running(self) -> list[LocalWorker]:
        """Workers neither discarded nor failed."""
        return [w for w in self.started if w.state in ("starting", "loaded", "dead")]

    def hold(self, *workers: LocalWorker) -> None:
        """Calls reaching ``workers`` wait until :meth:`release`."""
        with self._changed:
            for worker in workers:
                worker.held = True

    def release(self, *workers: LocalWorker) -> None:
        with self._changed:
            for worker in workers:
                worker.held = False
            self._changed.notify_all()

    def finish_loading(self, worker: LocalWorker) -> None:
        """A slow extra is loaded at its next check."""
        with self._changed:
            worker.load = "at once"

    def kill(self, worker: LocalWorker) -> None:
        """``worker`` dies: its calls, held ones included, raise ProviderUnavailable."""
        with self._changed:
            worker.state = "dead"
            self._changed.notify_all()

    def fail_next_call(self, worker: LocalWorker, error: Exception) -> None:
        with self._changed:
            worker.fail_next = error

    def wait_arrived(self, thread: int) -> LocalWorker | None:
        """The worker a call of thread ``thread`` (its ident) is in; waits up to ``WAIT_S`` for
        it to arrive (``None``: it did not)."""

        def where() -> LocalWorker | None:
            return next((w for w in self.started if thread in w.inside), None)

        with self._changed:
            return self._changed.wait_for(where, timeout=WAIT_S)

    def _enter(self, worker: LocalWorker) -> None:
        with self._changed:
            assert worker.state != "starting", f"a call reached {worker.name}, still starting"
            worker.calls += 1
            worker.inside.append(threading.get_ident())
            self._changed.notify_all()
            try:
                released = self._changed.wait_for(
                    lambda: not worker.held or worker.state != "loaded", timeout=HOLD_S
                )
                assert released, f"a call held in {worker.name} was never released"
            finally:
                worker.inside.remove(threading.get_ident())
                self._changed.notify_all()
            if worker.state != "loaded":
                raise ProviderUnavailable(f"embedding worker {worker.name} is {worker.state}")
            if worker.fail_next is not None:
                error, worker.fail_next = worker.fail_next, None
                raise error
