"""``vm`` jobs end to end: the whole API on uvicorn with the local job system, real VMs under
TCG through libvirt, and ``ember vm run``/``ember vm ps`` against it.

A job's files go into the VM and the files it leaves come back as artifacts; its console and
output stream as events; its VM is recorded ``gone``; past its wall clock it fails
``vm_timeout``; cancelled mid-run it is ``cancelled`` with its VM destroyed; limits above a
cap and a token without ``vms:run`` are refused before anything runs. No VM is left after
any test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ember.cli.jobs_client import Event, JobsClient
from ember.cli.main import app as cli
from ember.vm.image import GuestImage
from ember.vm.runner import VMRunner
from tests.support.live_app import LiveApp, live_app
from tests.support.vms import leftovers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, built_image: GuestImage, hypervisor: object
) -> Iterator[LiveApp]:
    home = tmp_path_factory.mktemp("vm-jobs")
    settings = {
        "EMBER_VM_IMAGE": str(built_image.directory),
        "EMBER_VM_ACCEL": "tcg",
        "EMBER_VM_MAX_TIMEOUT_S": "600",
    }
    with live_app(home, settings) as app:
        yield app


@pytest.fixture
def client(live: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers=live.auth, timeout=120) as http:
        yield http
    runner = live.services.vm_runner
    assert leftovers(runner) == []


def submit(client: httpx.Client, **payload: Any) -> str:
    answer = client.post("/jobs", json={"kind": "vm", "input": payload})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def events(client: httpx.Client, job_id: str) -> list[Event]:
    """Every event of the job, to its end."""
    token = client.headers["Authorization"].removeprefix("Bearer ")
    jobs = JobsClient(str(client.base_url), token)
    try:
        return list(jobs.events(job_id, 0))
    finally:
        jobs.close()


def logs(found: list[Event], message: str) -> list[dict[str, Any]]:
    return [e.data for e in found if e.type == "log" and e.data["message"] == message]


def test_a_vm_job_runs_its_command_and_keeps_its_files(client: httpx.Client) -> None:
    job_id = submit(
        client,
        argv=["sh", "-c", "tr a-z A-Z < in/words.txt > shout.txt; cat shout.txt; exit 4"],
        files={"in/words.txt": "quiet words\n"},
        vcpus=1,
        memory_mib=192,
    )
    found = events(client, job_id)
    job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "succeeded", (job["error_code"], job.get("error_detail"))
    result = client.get(f"/jobs/{job_id}/result").json()["result"]
    assert result["exit_code"] == 4 and result["stdout"] == "QUIET WORDS\n"
    assert result["accel"] == "tcg" and result["limits"]["memory_mib"] == 192
    assert [d["state"] for d in logs(found, "vm state")] == [
        "booting",
        "running",
        "stopping",
        "gone",
    ]
    assert any("ember-guest: running" in d["line"] for d in logs(found, "console"))
    assert "".join(d["text"] for d in logs(found, "output")) == "QUIET WORDS\n"
    artifacts = {a["path"]: a for a in client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]}
    assert set(artifacts) == {"in/words.txt", "shout.txt"}
    assert client.get(f"/jobs/{job_id}/artifacts/shout.txt").content == b"QUIET WORDS\n"
    (vm,) = [v for v in client.get("/vms").json()["vms"] if v["job_id"] == job_id]
    assert (vm["state"], vm["id"], vm["memory_mib"]) == ("gone", result["vm_id"], 192)


def test_past_its_wall_clock_the_job_fails_vm_timeout(client: httpx.Client) -> None:
    job_id = submit(client, argv=["sleep", "300"], timeout_s=8)
    events(client, job_id)
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["state"], job["error_code"]) == ("failed", "vm_timeout")
    (vm,) = [v for v in client.get("/vms").json()["vms"] if v["job_id"] == job_id]
    assert (vm["state"], vm["error_code"]) == ("failed", "vm_timeout")


def test_cancelling_a_running_vm_job_destroys_its_vm(client: httpx.Client, live: LiveApp) -> None:
    job_id = submit(client, argv=["sleep", "300"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        vms = [v for v in client.get("/vms").json()["vms"] if v["job_id"] == job_id]
        if vms and vms[0]["state"] == "running":
            break
        time.sleep(0.2)
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    events(client, job_id)
    assert client.get(f"/jobs/{job_id}").json()["state"] == "cancelled"
    (vm,) = [v for v in client.get("/vms").json()["vms"] if v["job_id"] == job_id]
    assert (vm["state"], vm["error_code"]) == ("failed", "job_cancelled")
    assert leftovers(live.services.vm_runner) == []


def test_limits_above_their_caps_and_missing_scopes_are_refused(
    client: httpx.Client, live: LiveApp
) -> None:
    answer = client.post("/jobs", json={"kind": "vm", "input": {"argv": ["true"], "vcpus": 64}})
    assert answer.status_code == 422 and answer.json()["code"] == "validation_failed"
    assert answer.json()["errors"][0]["path"] == "input.vcpus"
    assert "vm.max_vcpus" in answer.text
    _, token = live.services.tokens.create("no-vms", "no-vms", ["jobs:write", "jobs:read"])
    headers = {"Authorization": f"Bearer {token}"}
    refused = client.post(
        "/jobs", json={"kind": "vm", "input": {"argv": ["true"]}}, headers=headers
    )
    assert refused.status_code == 403, refused.text
    assert client.get("/vms", headers=headers).status_code == 403


def test_ember_vm_run_exits_with_the_command_and_downloads_its_files(
    live: LiveApp, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("1\n2\n3\n")
    out = tmp_path / "out"
    env = {"EMBER_TOKEN": live.token, "COLUMNS": "200"}
    args = ["vm", "run", "--url", live.url, "--file", str(data), "-o", str(out), "--timeout", "90"]
    command = ["--", "sh", "-c", "wc -l < data.txt > lines; echo counted; exit 3"]
    result = CliRunner().invoke(cli, [*args, *command], env=env, input="")
    assert result.exit_code == 3, result.output
    assert "counted" in result.stdout
    assert (out / "lines").read_text().strip() == "3"
    listed = CliRunner().invoke(cli, ["vm", "ps", "--url", live.url], env=env)
    assert listed.exit_code == 0 and "gone" in listed.stdout and "tcg" in listed.stdout
    timed_out = CliRunner().invoke(
        cli, ["vm", "run", "--url", live.url, "--timeout", "6", "--", "sleep", "100"], env=env
    )
    assert timed_out.exit_code == 1 and "vm_timeout" in timed_out.output


def test_runner_is_the_services_one(live: LiveApp) -> None:
    runner = live.services.vm_runner
    assert isinstance(runner, VMRunner) and runner.known_accel() == "tcg"
