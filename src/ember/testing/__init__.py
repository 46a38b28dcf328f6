"""Contract suites: one pytest mixin per seam, which every implementation's tests subclass.

=============================  ==================================================  =========
mixin                          seam                                                module
=============================  ==================================================  =========
:class:`VectorIndexContract`   :class:`~ember.vectors.protocol.VectorIndex`        vector_index
:class:`EmbedderContract`      :class:`~ember.providers.protocol.Embedder`         embedder
:class:`ProviderContract`      :class:`~ember.providers.protocol.Provider`         provider
:class:`JobBusContract`        :class:`~ember.jobs.protocol.JobBus`                job_bus
:class:`WorkerPoolContract`    :class:`~ember.jobs.protocol.WorkerPool`            worker_pool
:class:`ModelAccessContract`   :class:`~ember.models.protocol.ModelAccess`         model_access
:class:`HostLauncherContract`  :class:`~ember.models.protocol.HostLauncher`        model_access
=============================  ==================================================  =========

Each module's docstring says which fixtures and class attributes a subclass provides. Only
core packages are imported here (never Ray): the Ray implementations' subclasses live in the
test tree.
"""

from __future__ import annotations

from ember.testing.embedder import EmbedderContract
from ember.testing.job_bus import JobBusContract
from ember.testing.model_access import HostLauncherContract, ModelAccessContract
from ember.testing.provider import ProviderContract, RemoteProviderContract, Upstream
from ember.testing.vector_index import Reopen, VectorIndexContract
from ember.testing.worker_pool import WorkerPoolContract

__all__ = [
    "EmbedderContract",
    "HostLauncherContract",
    "JobBusContract",
    "ModelAccessContract",
    "ProviderContract",
    "RemoteProviderContract",
    "Reopen",
    "Upstream",
    "VectorIndexContract",
    "WorkerPoolContract",
]
