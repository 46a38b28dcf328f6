"""The ModelRegistry actor, a shell over :class:`ember.models.registry.ModelRegistry`, with
the launcher that starts ModelHost actors on the chosen node.

Ray restarts the registry when it dies. Its hosts die with it (it owns them); the restarted
one starts by itself, registers the bundled model and loads the warm models again from the
``models`` table, and loads the others on their next call (callers holding a dead host get
ProviderUnavailable, forget it and ask again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ember.actors.model_host import ModelHostActor, RayHostHandle
from ember.actors.singleton import start_after_restart
from ember.config import EmberConfig
from ember.config.models import LoggingConfig, ModelsConfig
from ember.config.tracing import TracingConfig
from ember.errors import ProviderUnavailable
from ember.models.bundle import ensure_bundled
from ember.models.records import LoadedModel, ModelRecord
from ember.models.registry import ModelRegistry, NodeCapacity
from ember.observability import configure_logging
from ember.placement.bundles import worker_resources
from ember.placement.scaling import ScalingPolicy
from ember.services import Services

__all__ = ["ModelRegistryActor", "RayLauncher"]

log = logging.getLogger(__name__)


def _vram_bytes() -> int | None:
    """Total memory of the first visible CUDA device, or ``None`` without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


class RayLauncher:
    """Starts a ModelHost actor per host of a model, pinned to its node; ``num_gpus`` and full
    offload on a node with GPUs (whose GPU count the registry uses to fit hosts).

    A node's room is ``models.memory_bytes`` when set. Otherwise, on a GPU node, 90 % of its
    first GPU's memory, read once by a probe task that holds a GPU on that node; on a CPU
    node (or when the probe finds no CUDA device) half of the memory Ray reports for it.
    Hosts trace their calls as ``tracing`` says (``None``: they make no spans) and log as
    ``logs`` says (``None``: Python's defaults).
    """

    def __init__(
        self,
        settings: ModelsConfig,
        tracing: TracingConfig | None = None,
        logs: LoggingConfig | None = None,
    ) -> None:
        self._settings = settings
        self._tracing = tracing
        self._logs = logs
        self._vram: dict[str, int | None] = {}

    async def nodes(self) -> list[NodeCapacity]:
        nodes = []
        for node in ray.nodes():  # type: ignore[no-untyped-call]
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            gpu = float(resources.get("GPU", 0)) > 0
            capacity = self._settings.memory_bytes
            if capacity is None and gpu:
                vram = await self._probe(node["NodeID"])
                capacity = None if vram is None else int(vram * 0.9)
            if capacity is None:
                capacity = int(resources.get("memory", 0)) // 2
            gpus = float(resources.get("GPU", 0))
            nodes.append(NodeCapacity(node["NodeID"], capacity, gpu, gpus))
        return nodes

    async def _probe(self, node_id: str) -> int | None:
        if node_id not in self._vram:
            probe: Any = ray.remote(_vram_bytes)
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            ref = probe.options(num_cpus=0, num_gpus=0.01, scheduling_strategy=strategy).remote()
            try:
                self._vram[node_id] = await asyncio.wait_for(ref, self._settings.load_timeout_s)
            except Exception as exc:
                log.warning("cannot read the GPU memory of node %s: %s", node_id, exc)
                self._vram[node_id] = None
        return self._vram[node_id]

    async def start(self, record: ModelRecord, node: NodeCapacity) -> RayHostHandle:
        settings = self._settings
        pool = settings.scaling
        remote: Any = ray.remote(ModelHostActor)
        actor = remote.options(
            num_cpus=pool.num_cpus,
            num_gpus=pool.num_gpus if node.gpu else 0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            max_concurrency=64,
            max_restarts=0,
        ).remote(record, settings, node.gpu, self._tracing, self._logs)
        handle = RayHostHandle(actor, record.name)
        try:
            await asyncio.wait_for(handle._call(actor.load.remote()), settings.load_timeout_s)
        except TimeoutError:
            ray.kill(actor, no_restart=True)
            raise ProviderUnavailable(
                f"{record.name}: no host started within {settings.load_timeout_s} s; the "
                f"cluster may lack {pool.num_cpus:g} free CPU for it (models.host_num_cpus)"
            ) from None
        except BaseException:
            ray.kill(actor, no_restart=True)
            raise
        return handle


def _scaler(settings: ModelsConfig) -> Callable[[str], ScalingPolicy] | None:
    """One policy per model between ``replicas_min`` and ``replicas_max``; ``None`` (one host
    per model) when they are both 1."""
    pool = settings.scaling
    if pool.max_size == 1:
        return None
    return lambda name: ScalingPolicy.of(pool)


class ModelRegistryActor:
    """Registers the bundled model, warms the warm ones, unloads idle ones on a timer and,
    with ``models.replicas_max`` above 1, sizes each model's hosts to its queue on another."""

    def __init__(self, config: EmberConfig) -> None:
        configure_logging("ember-model-registry", config.logging.level, config.logging.format)
        self._config = config
        self._catalog = Services.build(config).catalog
        settings = config.models
        self._registry = ModelRegistry(
            self._catalog,
            RayLauncher(settings, config.tracing, config.logging),
            settings,
            scaler=_scaler(settings),
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._bundle_error: str | None = None
        self._started: asyncio.Task[None] | None = None
        start_after_restart()

    async def start(self) -> None:
        """Register the bundled model (first start assembles it) and load the warm models;
        returns once they are loaded (or failed: :meth:`ready` says why). Idle models are then
        unloaded on a timer. Idempotent: a second call waits for the first one's work."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        if self._config.models.bundled:
            try:
                await asyncio.to_thread(
                    ensure_bundled, self._config.home_dir / "models", self._catalog
                )
            except Exception as exc:
                self._bundle_error = f"{type(exc).__name__}: {exc}"
                log.error("the bundled model is not available: %s", exc)
        self._tasks = [asyncio.create_task(self._sweep())]
        if self._config.models.replicas_max > 1:
            self._tasks.append(asyncio.create_task(self._rescale()))
        await self._registry.warm()

    async def replicas(
        self, name: str, keep_alive_s: float | None
    ) -> tuple[ModelRecord, list[RayHostHandle]]:
        """The record of ``name`` and the hosts that take its calls now (loading it first)."""
        hosts = await self._registry.replicas(name, keep_alive_s)
        return self._catalog_record(name), hosts

    def touch(self, name: str, keep_alive_s: float | None) -> None:
        self._registry.touch(name, keep_alive_s)

    async def unload(self, name: str) -> bool:
        return await self._registry.unload(name)

    async def warm(self, name: str) -> None:
        await self._registry.acquire(name, -1)

    async def ps(self) -> list[LoadedModel]:
        return await self._registry.ps()

    def records(self) -> list[ModelRecord]:
        return self._catalog.all()

    def resource_demand(self) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        """``(desired, waiting)`` for :meth:`ember.cluster.ResourceRequests.update`: a bundle
        per host held or wanted, and the bundles of those wanted but not started (a host's
        ``models.host_num_cpus``, plus ``models.host_num_gpus`` for a GPU host)."""
        demand = self._registry.host_demand()
        pool = self._config.models.scaling

        def bundle(gpu: bool) -> dict[str, float]:
            node = {"GPU": 1.0 if gpu else 0.0}
            return worker_resources(node, pool.num_cpus, pool.num_gpus)

        unplaced = [bundle(gpu) for gpu in demand.unplaced]
        return [bundle(gpu) for gpu in demand.placed] + unplaced, unplaced

    def ready(self) -> tuple[bool, str]:
        if self._bundle_error is not None:
            return False, f"bundled model: {self._bundle_error}"
        return self._registry.ready()

    def _catalog_record(self, name: str) -> ModelRecord:
        return self._catalog.get(name)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._config.models.sweep_interval_s)
            try:
                await self._registry.sweep()
            except Exception as exc:
                log.warning("model sweep failed: %s", exc)

    async def _rescale(self) -> None:
        while True:
            await asyncio.sleep(self._config.models.scale_interval_s)
            try:
                await self._registry.rescale()
            except Exception as exc:
                log.warning("sizing the model hosts failed: %s", exc)
