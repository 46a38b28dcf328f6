"""Ray Data pipelines: bulk ingest and reindex over the memory plane.

Ray Data loads on first use: ``import ember.pipelines`` (a job worker does) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports

if TYPE_CHECKING:
    from ember.pipelines.bulk_ingest import BulkIngest
    from ember.pipelines.bulk_reindex import BulkReindex
    from ember.pipelines.runner import ClusterPipelines

__all__ = ["BulkIngest", "BulkReindex", "ClusterPipelines"]

_LAZY = {
    "BulkIngest": "ember.pipelines.bulk_ingest",
    "BulkReindex": "ember.pipelines.bulk_reindex",
    "ClusterPipelines": "ember.pipelines.runner",
}


__getattr__ = lazy_exports(__name__, _LAZY)
