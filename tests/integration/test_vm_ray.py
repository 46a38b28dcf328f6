"""``vm`` jobs on a real Ray cluster, as ``ember up`` runs them: the job runs on a VM
supervisor actor (the ``vm`` pool, sized by the ``vm`` queue), which boots a real VM under
TCG through libvirt. A supervisor killed mid-job leaves its VM running (libvirt owns QEMU);
the supervisor that replaces it reaps that orphan when it starts, and the job's next attempt
runs in a VM of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import ray

from ember.actors.names import DISPATCHER, NAMESPACE
from ember.auth import SqlTokenRepository
from ember.config import EmberConfig, load_config
from ember.services import Services
from ember.vm.image import GuestImage
from ember.vm.runner import VMRunner
from tests.support.cluster import ember_settings, importable_tests, migrated, running_ember
from tests.support.vms import leftovers

pytestmark = pytest.mark.slow

TIMEOUT_S = 180.0


@dataclass
class Cluster:
    url: str
    headers: dict[str, str]
    config: EmberConfig
    runner: VMRunner

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers=self.headers, timeout=TIMEOUT_S, **options
        )

    def vms(self, job_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/vms").json()["vms"]
        return [vm for vm in found if vm["job_id"] == job_id]

    def until(self, what: str, check: Any) -> Any:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, built_image: GuestImage, hypervisor: object
) -> Iterator[Cluster]:
    importable_tests()
    config = load_config(
        None,
        ember_settings(
            tmp_path_factory.mktemp("vm-ray"),
            EMBER_RAY_NUM_CPUS="4",
            EMBER_RAY_DASHBOARD="false",
            EMBER_MODELS_BUNDLED="false",
            EMBER_JOBS_POLL_INTERVAL_S="0.2",
            EMBER_JOBS_LEASE_TTL_S="6",
            EMBER_JOBS_RENEW_INTERVAL_S="1",
            EMBER_VM_IMAGE=str(built_image.directory),
            EMBER_VM_ACCEL="tcg",
            EMBER_VM_SUPERVISORS_MAX="1",
            EMBER_VM_VMS_PER_SUPERVISOR="2",
        ),
    )
    services = Services.build(config)
    runner = services.vm_runner
    try:
        with migrated(config) as database:
            token = SqlTokenRepository(database).create("ci", "ci", ["admin"])[1]
            with running_ember(config, database) as running:
                yield Cluster(running.url, {"Authorization": f"Bearer {token}"}, config, runner)
        assert leftovers(runner) == []
    finally:
        for name in runner._hypervisor.names(runner.prefix):
            runner._hypervisor.destroy(name)
        services.close()


def supervisors() -> dict[str, Any]:
    dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
    found: dict[str, Any] = ray.get(dispatcher.workers.remote("vm"))
    return found


def test_a_vm_job_runs_on_a_vm_supervisor(cluster: Cluster) -> None:
    created = cluster.call("POST", "/jobs", json={"kind": "vm", "input": {"argv": ["uname", "-r"]}})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job = cluster.until(
        "the job's end",
        lambda: (
            (j := cluster.call("GET", f"/jobs/{job_id}").json())["state"]
            in ("succeeded", "failed", "cancelled")
            and j
        ),
    )
    assert job["state"] == "succeeded", job
    result = cluster.call("GET", f"/jobs/{job_id}/result").json()["result"]
    assert result["exit_code"] == 0 and result["stdout"].strip().endswith("cloud-amd64")
    (supervisor,) = supervisors().values()
    info = ray.get(supervisor.info.remote())
    assert info["accel"] == "tcg" and info["active"] == 0


def test_a_supervisor_killed_mid_job_leaves_an_orphan_its_successor_reaps(
    cluster: Cluster,
) -> None:
    payload = {"argv": ["sh", "-c", "sleep 20; echo second"], "timeout_s": 120}
    created = cluster.call("POST", "/jobs", json={"kind": "vm", "input": payload})
    job_id = created.json()["id"]
    first = cluster.until(
        "the first VM running",
        lambda: [vm for vm in cluster.vms(job_id) if vm["state"] == "running"],
    )[0]
    (owner, supervisor) = next(iter(supervisors().items()))
    ray.kill(supervisor, no_restart=True)
    assert f"domain {cluster.runner.prefix}{first['id']}" in leftovers(cluster.runner)

    # The lease runs out, the job is queued again, a new supervisor starts and reaps.
    reaped = cluster.until(
        "the orphan reaped",
        lambda: [
            vm for vm in cluster.vms(job_id) if vm["id"] == first["id"] and vm["state"] == "failed"
        ],
    )[0]
    assert reaped["error_code"] == "vm_orphaned"
    assert f"domain {cluster.runner.prefix}{first['id']}" not in leftovers(cluster.runner)
    new_owner = next(iter(supervisors()))
    assert new_owner != owner

    job = cluster.until(
        "the second attempt's end",
        lambda: (
            (j := cluster.call("GET", f"/jobs/{job_id}").json())["state"]
            in ("succeeded", "failed", "cancelled")
            and j
        ),
    )
    assert job["state"] == "succeeded" and job["attempts"] == 2, job
    result = cluster.call("GET", f"/jobs/{job_id}/result").json()["result"]
    assert result["stdout"] == "second\n" and result["vm_id"] != first["id"]
    assert leftovers(cluster.runner) == []
