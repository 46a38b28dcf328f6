"""Ray clusters and a running ember for the tests that need real ones.

- :func:`local_ray`: this process starts a one-node local Ray cluster and is connected to it.
- :func:`ray_cluster`: a ``ray.cluster_utils.Cluster`` of several nodes on this machine.
- :func:`running_ember`: ember as ``ember up`` runs it (``Runtime(config).start()`` and
  ``.deploy()``, a local cluster of its own or the one at ``ray.address``), on a free port.

Ray and ember's cluster side are imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.config import EmberConfig, load_config
from ember.storage import Database, Migrator
from tests.support.postgres import free_port

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

    from ember.cluster import ClusterInfo

__all__ = [
    "RunningEmber",
    "ember_config",
    "ember_settings",
    "importable_tests",
    "local_ray",
    "migrated",
    "patient_node_start",
    "ray_cluster",
    "running_ember",
]

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def local_ray(num_cpus: int = 2, namespace: str | None = None) -> Iterator[None]:
    """A new local Ray cluster of ``num_cpus`` CPUs without a dashboard, this process its
    driver (in ``namespace``, else an anonymous one); shut down on exit."""
    import ray

    with patient_node_start():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, namespace=namespace)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def patient_node_start(timeout_s: float = 120.0) -> Iterator[None]:
    """While it lasts, a Ray node this process starts may take up to ``timeout_s`` to register.

    Ray gives a node it starts 30 s to appear in the GCS (hard-coded in its node start); with
    the whole suite on two cores a node has taken longer, failing the test that added it. The
    node lookup that start polls is made to wait for the node itself, up to ``timeout_s``.
    """
    from ray._private import services

    original = services.get_node

    def patient(gcs_address: str, node_id: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return original(gcs_address, node_id)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    services.get_node = patient
    try:
        yield
    finally:
        services.get_node = original


@contextmanager
def ray_cluster(head_cpus: int, *nodes: dict[str, Any], connect: bool = False) -> Iterator[Cluster]:
    """A ``ray.cluster_utils.Cluster`` on this machine: a head of ``head_cpus`` CPUs and one
    more node per ``nodes`` entry (``add_node`` arguments, waited for). With ``connect`` this
    process joins it at once; a test may also ``ray.init(address=cluster.address)`` itself.
    On exit this process disconnects and every node is shut down. Nodes started meanwhile
    (``add_node`` in a test) may take :func:`patient_node_start`'s time to register."""
    import ray
    from ray.cluster_utils import Cluster

    with patient_node_start():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus})
        try:
            for node in nodes:
                cluster.add_node(**node)
            if nodes:
                cluster.wait_for_nodes()
            if connect:
                ray.init(address=cluster.address)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


def ember_settings(home: Path, **settings: str) -> dict[str, str]:
    """The ``EMBER_*`` settings of a test ember: its home, Serve on a free port (never 8000),
    then ``settings``."""
    return {"EMBER_HOME": str(home), "EMBER_SERVER_PORT": str(free_port()), **settings}


def ember_config(home: Path, **settings: str) -> EmberConfig:
    """The configuration of :func:`ember_settings` (the defaults, no config file)."""
    return load_config(None, ember_settings(home, **settings))


def importable_tests() -> None:
    """Ray's worker processes must import the test plug-ins as the driver does: the
    repository root goes on ``PYTHONPATH``, which the workers inherit."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


@contextmanager
def migrated(config: EmberConfig) -> Iterator[Database]:
    """The database of ``config``, migrated to the head revision; disposed on exit."""
    database = Database.from_config(config)
    try:
        Migrator(database).upgrade()
        yield database
    finally:
        database.dispose()


@dataclass(frozen=True)
class RunningEmber:
    url: str
    """The Serve app's base URL, ``http://host:port``."""
    config: EmberConfig
    database: Database
    """Open on ember's database, migrated."""
    info: ClusterInfo
    """Where the cluster is and whether ember started it."""


@contextmanager
def running_ember(config: EmberConfig, database: Database | None = None) -> Iterator[RunningEmber]:
    """ember running as ``ember up`` runs it: ``Runtime(config).start()``, which starts a
    local cluster of its own or joins ``ray.address``, then ``.deploy()``; ``.stop()`` on exit
    (a cluster it started goes with it). Its database is ``database`` when given (the caller's,
    migrated and left open), else one :func:`migrated` here and disposed on exit."""
    from ember.cluster import Runtime

    with ExitStack() as stack:
        stack.enter_context(patient_node_start())
        if database is None:
            database = stack.enter_context(migrated(config))
        runtime = Runtime(config)
        info = runtime.start()
        try:
            yield RunningEmber(runtime.deploy(), config, database, info)
        finally:
            runtime.stop()
