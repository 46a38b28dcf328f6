"""The workers of an embedding pool on Ray: EmbeddingWorker actors in placement groups.

:class:`RayEmbeddingWorkers` is the Ray implementation of
:class:`~ember.providers.protocol.EmbeddingWorkers`. The first workers share one placement
group, so they land together or not at all; each extra gets a one-bundle group of its own,
removed with it. Calls wait on object refs without ``ray.get``
(:func:`~ember.actors.refs.wait_for`); Ray's errors are mapped into ember's tree here.

Each call carries the caller's trace context, and the worker serves it as a span of that
trace (service ``ember-embedding-worker``): ``embeddings {model}`` with
``gen_ai.operation.name: embeddings``, ``gen_ai.request.model`` and ``ember.embedding.inputs``
(how many texts).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from opentelemetry.trace import Span
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ember.actors.placement_groups import Strategy, release, request, reserve
from ember.actors.refs import wait_for
from ember.actors.trace_store import RayTraceStore
from ember.config import EmberConfig
from ember.errors import EmberError, ProviderError, ProviderUnavailable
from ember.observability import configure_logging
from ember.observability.tracing import Tracing, call_context, served
from ember.pipelines.embedding_worker import EmbeddingWorker

__all__ = ["RayEmbeddingWorkers", "TracedEmbeddingWorker", "WorkerHandle", "translate"]

log = logging.getLogger(__name__)


class TracedEmbeddingWorker(EmbeddingWorker):
    """An :class:`~ember.pipelines.embedding_worker.EmbeddingWorker` actor that logs as
    ``ember-embedding-worker`` and serves each call in its caller's trace (see the module)."""

    def __init__(self, config: EmberConfig) -> None:
        configure_logging("ember-embedding-worker", config.logging.level, config.logging.format)
        super().__init__(config)
        self._tracing = Tracing(config.tracing, "ember-embedding-worker", store=RayTraceStore())
        self._tracer = self._tracing.tracer("ember.embeddings")

    def embed(
        self, texts: Sequence[str], trace: Mapping[str, str] | None = None
    ) -> npt.NDArray[np.float32]:
        with self._served(len(texts), trace):
            return super().embed(texts)

    def embed_query(
        self, text: str, trace: Mapping[str, str] | None = None
    ) -> npt.NDArray[np.float32]:
        with self._served(1, trace):
            return super().embed_query(text)

    def _served(
        self, inputs: int, trace: Mapping[str, str] | None
    ) -> contextlib.AbstractContextManager[Span]:
        attributes = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": self.model_id,
            "ember.embedding.inputs": inputs,
        }
        return served(self._tracer, f"embeddings {self.model_id}", trace, attributes=attributes)


@dataclass(eq=False)
class WorkerHandle:
    """One EmbeddingWorker actor."""

    actor: Any
    group: PlacementGroup | None  # an extra's own group; None in the shared one
    deadline: float  # monotonic time by which it must have loaded
    starting: Any  # warm()'s object ref until the worker has loaded; then None
    info: dict[str, Any] = field(default_factory=dict)


class RayEmbeddingWorkers:
    """EmbeddingWorker actors each asking for ``resources`` and built from ``config``; the
    first ones placed together by ``strategy``. A worker must be placed and loaded within
    ``timeout_s`` (``clock`` is monotonic seconds). Needs a connected Ray; see
    :class:`~ember.providers.protocol.EmbeddingWorkers` for the contract."""

    def __init__(
        self,
        config: EmberConfig,
        resources: Mapping[str, float],
        *,
        strategy: Strategy = "PACK",
        timeout_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._resources = dict(resources)
        self._strategy: Strategy = strategy
        self._timeout_s = timeout_s
        self._clock = clock
        self._group: PlacementGroup | None = None

    @property
    def resources(self) -> dict[str, float]:
        """What each worker asks Ray for."""
        return dict(self._resources)

    def start(self, count: int) -> list[WorkerHandle]:
        deadline = self._clock() + self._timeout_s
        group = reserve(self._resources, count, strategy=self._strategy, timeout_s=self._timeout_s)
        self._group = group
        workers: list[WorkerHandle] = []
        try:
            for index in range(count):
                workers.append(self._spawn(group, index, own_group=False, deadline=deadline))
            infos = wait_for(
                [worker.starting for worker in workers],
                timeout_s=max(0.0, deadline - self._clock()),
            )
        except RayError as exc:
            self._abandon(workers)
            raise translate(exc) from exc
        except BaseException:
            self._abandon(workers)
            raise
        for worker, info in zip(workers, infos, strict=True):
            worker.info, worker.starting = info, None
        return workers

    def begin(self) -> WorkerHandle:
        group = request(self._resources, 1)
        try:
            return self._spawn(group, 0, own_group=True, deadline=self._clock() + self._timeout_s)
        except RayError as exc:
            release(group)
            raise translate(exc) from exc
        except BaseException:
            release(group)
            raise

    def loaded(self, worker: WorkerHandle) -> bool:
        if worker.starting is None:
            return True
        if ray.wait([worker.starting], timeout=0)[0]:
            try:
                info = wait_for([worker.starting])[0]
            except RayError as exc:
                raise translate(exc) from exc
            worker.info, worker.starting = info, None
            return True
        if self._clock() > worker.deadline:
            raise ProviderUnavailable(
                f"an extra embedding worker was not placed and loaded in {self._timeout_s:g} s"
            )
        return False

    def embed(self, worker: WorkerHandle, texts: list[str]) -> npt.NDArray[np.float32]:
        ref = worker.actor.embed.remote(texts, call_context())
        vectors: npt.NDArray[np.float32] = self._ask(ref)
        return vectors

    def embed_query(self, worker: WorkerHandle, text: str) -> npt.NDArray[np.float32]:
        ref = worker.actor.embed_query.remote(text, call_context())
        vector: npt.NDArray[np.float32] = self._ask(ref)
        return vector

    def info(self, worker: WorkerHandle) -> dict[str, Any]:
        return dict(worker.info)

    def discard(self, workers: Sequence[WorkerHandle]) -> None:
        for worker in workers:
            try:
                ray.kill(worker.actor, no_restart=True)
            except Exception as exc:  # already dead, or the cluster is gone
                log.debug("cannot kill an embedding worker: %s", exc)
            if worker.group is not None:
                release(worker.group)

    def close(self) -> None:
        if self._group is not None:
            release(self._group)
            self._group = None

    def _spawn(
        self, group: PlacementGroup, index: int, *, own_group: bool, deadline: float
    ) -> WorkerHandle:
        """A worker in bundle ``index`` of ``group``, and its warm call; ``own_group`` makes
        :meth:`discard` remove the group with it. Restarted (up to 3 times, calls retried) if
        its process dies."""
        remote: Any = ray.remote(TracedEmbeddingWorker)
        actor = remote.options(
            num_cpus=self._resources["CPU"],
            num_gpus=self._resources.get("GPU", 0.0),
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, index),
            max_restarts=3,
            max_task_retries=3,
        ).remote(self._config)
        return WorkerHandle(actor, group if own_group else None, deadline, actor.warm.remote())

    def _abandon(self, workers: list[WorkerHandle]) -> None:
        self.discard(workers)
        self.close()

    @staticmethod
    def _ask(ref: Any) -> Any:
        try:
            return wait_for([ref])[0]
        except RayError as exc:
            raise translate(exc) from exc


def translate(exc: RayError) -> EmberError:
    """The ember error for a worker call's Ray error: the worker's own ember error as it was
    raised, :class:`ProviderUnavailable` for a dead worker or a load past its deadline, else
    :class:`ProviderError`."""
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, EmberError):
        return exc.cause
    if isinstance(exc, GetTimeoutError):
        return ProviderUnavailable(
            "embedding workers were placed but did not load their model within "
            "embeddings.placement_timeout_s"
        )
    if isinstance(exc, RayActorError):
        return ProviderUnavailable(f"an embedding worker died: {exc}")
    return ProviderError(f"an embedding worker failed: {exc}")
