"""The pipelines as the job system runs them (a :class:`~ember.jobs.memory_kinds.BulkRunner`).

Ray Data loads on the first run, not on import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ember.config import EmberConfig
from ember.memory.ingest import IngestProgress, IngestReport
from ember.memory.reindex import ReindexProgress, ReindexReport
from ember.memory.service import MemoryService
from ember.storage import Database

__all__ = ["ClusterPipelines"]


class ClusterPipelines:
    """Bulk ingest and reindex on the Ray cluster this process is connected to."""

    def __init__(
        self,
        config: EmberConfig,
        database: Database,
        *,
        no_progress_timeout_s: float | None = None,
    ) -> None:
        self._config = config
        self._database = database
        self._timeout = no_progress_timeout_s

    def ingest(
        self,
        memory: MemoryService,
        collection: str,
        root: Path,
        progress: Callable[[IngestProgress], None],
    ) -> IngestReport:
        """See :meth:`BulkIngest.run`."""
        from ember.pipelines.bulk_ingest import BulkIngest

        pipeline = BulkIngest(self._config, memory, no_progress_timeout_s=self._timeout)
        return pipeline.run(collection, root, progress)

    def reindex(
        self,
        memory: MemoryService,
        collection: str,
        progress: Callable[[ReindexProgress], None],
    ) -> ReindexReport:
        """See :meth:`BulkReindex.run`."""
        from ember.pipelines.bulk_reindex import BulkReindex

        pipeline = BulkReindex(
            self._config, memory, self._database, no_progress_timeout_s=self._timeout
        )
        return pipeline.run(collection, progress)
