"""Real VMs under TCG through libvirt: a command's output and exit code, files both ways,
the wall clock, cancelling mid-boot, an owner that dies mid-run and the reaper, bad images,
and the states each VM goes through. Every test checks that nothing of its VMs is left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ember.errors import VMFailed, VMImageInvalid, VMTimeout
from ember.observability.metrics import PrometheusMetrics
from ember.storage import Database, Migrator
from ember.vm.image import GuestImage
from ember.vm.lifecycle import SqlVMRecords, VMState
from ember.vm.runner import VMLimits, VMRunner
from tests.support.vms import leftovers

pytestmark = pytest.mark.slow

LIMITS = VMLimits(timeout_s=60.0, disk_mib=16)


def sample(runner: VMRunner, name: str, **labels: str) -> float | None:
    """A sample the runner's metrics (the fixture's :class:`PrometheusMetrics`) hold."""
    metrics = runner._metrics
    assert isinstance(metrics, PrometheusMetrics)
    return metrics.registry.get_sample_value(name, labels)


class Log:
    """Collects a run's progress lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, message: str, **fields: Any) -> None:
        self.lines.append((message, fields))

    def of(self, message: str) -> list[dict[str, Any]]:
        return [fields for m, fields in self.lines if m == message]


async def test_a_command_runs_with_its_stdin_env_and_exit_code(
    runner: VMRunner, tmp_path: Path
) -> None:
    log = Log()
    result = await runner.run(
        ["sh", "-c", 'read line; echo "got $line as $WHO in $(pwd)"; echo oops >&2; exit 7'],
        tmp_path,
        LIMITS,
        env={"WHO": "guest"},
        stdin=b"hello\n",
        on_log=log,
    )
    assert result.exit_code == 7
    assert result.stdout == b"got hello as guest in /workspace\n"
    assert result.stderr == b"oops\n"
    assert result.accel == "tcg"
    assert 0 < result.boot_s < result.duration_s
    states = [fields["state"] for fields in log.of("vm state")]
    assert states == ["booting", "running", "stopping", "gone"]
    assert any("ember-guest: running" in f["line"] for f in log.of("console"))
    assert "".join(f["text"] for f in log.of("output") if f["stream"] == "stdout") == (
        "got hello as guest in /workspace\n"
    )
    assert sample(runner, "ember_vm_boots_total", accel="tcg", outcome="ok") == 1
    assert sample(runner, "ember_vm_boot_seconds_count", accel="tcg") == 1
    assert sample(runner, "ember_vm_boot_seconds_sum", accel="tcg") == result.boot_s
    assert sample(runner, "ember_vm_running", accel="tcg") == 0


async def test_the_guest_is_another_kernel_without_a_network(
    runner: VMRunner, tmp_path: Path
) -> None:
    result = await runner.run(
        ["sh", "-c", "uname -r; ls /sys/class/net; cat /proc/cpuinfo | grep -c ^processor"],
        tmp_path,
        VMLimits(timeout_s=60.0, disk_mib=16, vcpus=2),
    )
    release, *rest = result.stdout.decode().split()
    assert release.endswith("cloud-amd64") and release != os.uname().release
    assert rest == ["lo", "2"]  # only loopback; the vCPUs asked for


async def test_commands_run_in_the_read_only_root_disk_with_python(
    runner: VMRunner, built_image: GuestImage, tmp_path: Path
) -> None:
    if built_image.root is None:
        pytest.skip("the image ember built here has no root disk")
    script = (
        "import json, os, socket, sys; "
        "print(json.dumps([sys.version_info[0], os.getcwd(), socket.gethostname() != '']))"
    )
    result = await runner.run(
        ["sh", "-c", f'python3 -c "{script}"; echo x > /tmp/t && cat /tmp/t; touch /usr/no'],
        tmp_path,
        LIMITS,
    )
    assert result.stdout.decode().splitlines() == ['[3, "/workspace", true]', "x"]
    assert b"Read-only file system" in result.stderr and result.exit_code != 0


async def test_files_go_in_and_come_back(runner: VMRunner, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("two words\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "gone.txt").write_text("removed by the command")
    result = await runner.run(
        ["sh", "-c", "wc -w < input.txt > count.txt; mkdir -p out; echo made > out/new; rm -r old"],
        tmp_path,
        LIMITS,
    )
    assert result.exit_code == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "count.txt",
        "input.txt",
        "out",
        "out/new",
    ]
    assert (tmp_path / "count.txt").read_text().strip() == "2"
    assert (tmp_path / "out/new").read_text() == "made\n"


async def test_output_past_the_cap_is_counted_not_kept(runner: VMRunner, tmp_path: Path) -> None:
    result = await runner.run(
        ["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' a; echo short >&2"],
        tmp_path,
        VMLimits(timeout_s=60.0, disk_mib=16, output_bytes=1000),
    )
    assert result.stdout == b"a" * 1000 and result.stdout_truncated
    assert result.stderr == b"short\n" and not result.stderr_truncated


async def test_a_daemon_left_behind_does_not_hold_the_vm(runner: VMRunner, tmp_path: Path) -> None:
    result = await runner.run(
        ["sh", "-c", "(sleep 600 &) ; sleep 600 > /dev/null 2>&1 & echo started"],
        tmp_path,
        LIMITS,
    )
    assert result.exit_code == 0 and result.stdout == b"started\n"
    assert result.duration_s < 30


async def test_past_its_wall_clock_the_vm_is_destroyed(runner: VMRunner, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("before")
    log = Log()
    with pytest.raises(VMTimeout) as caught:
        await runner.run(
            ["sh", "-c", "echo changed > keep.txt; sleep 300"],
            tmp_path,
            VMLimits(timeout_s=8.0, disk_mib=16),
            on_log=log,
        )
    assert caught.value.code == "vm_timeout" and caught.value.extra["timeout_s"] == 8.0
    assert leftovers(runner) == []
    assert (tmp_path / "keep.txt").read_text() == "before"  # not read back from a killed VM
    assert [f["state"] for f in log.of("vm state")][-1] == "running"
    assert sample(runner, "ember_vm_kills_total", accel="tcg", reason="timeout") == 1
    assert sample(runner, "ember_vm_boots_total", accel="tcg", outcome="vm_timeout") == 1
    assert sample(runner, "ember_vm_boot_seconds_count", accel="tcg") is None


async def test_cancelling_mid_boot_destroys_the_vm(
    runner: VMRunner, tmp_path: Path, database: Database
) -> None:
    records = SqlVMRecords(database)
    runner._records = records
    log = Log()
    task = asyncio.create_task(runner.run(["sleep", "300"], tmp_path, LIMITS, on_log=log))
    while not log.of("vm state"):
        await asyncio.sleep(0.05)
    assert log.of("vm state")[0]["state"] == "booting"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(runner) == []
    assert not any(f["state"] == "running" for f in log.of("vm state"))
    (vm,) = records.recent()
    assert vm.state == VMState.FAILED and vm.error_code == "job_cancelled"
    assert sample(runner, "ember_vm_kills_total", accel="tcg", reason="cancelled") == 1
    assert sample(runner, "ember_vm_boots_total", accel="tcg", outcome="job_cancelled") == 1
    assert sample(runner, "ember_vm_running", accel="tcg") == 0


async def test_each_vm_is_recorded_through_its_states(
    runner: VMRunner, tmp_path: Path, database: Database
) -> None:
    records = SqlVMRecords(database)
    runner._records = records
    result = await runner.run(["true"], tmp_path, LIMITS, job_id=None)
    vm = records.get(result.vm_id)
    assert vm is not None
    assert (vm.state, vm.accel, vm.vcpus, vm.memory_mib, vm.disk_mib) == (
        VMState.GONE,
        "tcg",
        1,
        256,
        16,
    )
    assert vm.domain == runner.prefix + result.vm_id and vm.error_code is None


@pytest.mark.parametrize("missing", ["directory", "vmlinuz"])
async def test_a_bad_image_fails_before_anything_starts(
    runner: VMRunner, built_image: GuestImage, tmp_path: Path, missing: str
) -> None:
    import shutil

    image = tmp_path / "image"
    if missing != "directory":
        shutil.copytree(built_image.directory, image)
        (image / missing).unlink()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    broken = VMRunner(runner._hypervisor, lambda: GuestImage.load(image), runner._root, accel="tcg")
    with pytest.raises(VMImageInvalid) as caught:
        await broken.run(["true"], workspace, LIMITS)
    expected = image if missing == "directory" else image / missing
    assert caught.value.extra["path"] == str(expected)
    assert leftovers(broken) == []


ORPHAN_SCRIPT = """
import asyncio, sys
from pathlib import Path
from ember.vm.image import GuestImage
from ember.vm.libvirt_hypervisor import LibvirtHypervisor
from ember.vm.runner import VMLimits, VMRunner

async def main():
    runner = VMRunner(LibvirtHypervisor(), lambda: GuestImage.load(Path(sys.argv[1])),
                      Path(sys.argv[2]), accel="tcg")
    async def log(message, **fields):
        if message == "vm state" and fields["state"] == "running":
            print("running", flush=True)
    await runner.run(["sleep", "300"], Path(sys.argv[3]), VMLimits(timeout_s=300, disk_mib=16),
                     on_log=log)

asyncio.run(main())
"""


async def test_an_owner_killed_mid_run_leaves_an_orphan_the_reaper_removes(
    runner: VMRunner, built_image: GuestImage, tmp_path: Path
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(built_image.directory), str(runner._root),
         str(tmp_path)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert owner.stdout is not None
        assert await asyncio.to_thread(owner.stdout.readline) == b"running\n"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        orphans = leftovers(runner)
        assert any(line.startswith("domain ") for line in orphans), orphans
        assert any(line.startswith("dir ") for line in orphans), orphans
        started = time.monotonic()
        reaped = await asyncio.to_thread(runner.reap, frozenset)
        assert len(reaped) == 1 and time.monotonic() - started < 30
        assert leftovers(runner) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()


async def test_the_reaper_spares_what_a_live_owner_holds(runner: VMRunner, tmp_path: Path) -> None:
    log = Log()
    task = asyncio.create_task(runner.run(["sleep", "5"], tmp_path, LIMITS, on_log=log))
    while not any(f["state"] == "running" for f in log.of("vm state")):
        await asyncio.sleep(0.05)
    vm_id = log.of("vm state")[0]["vm"]
    assert await asyncio.to_thread(runner.reap, lambda: frozenset({vm_id})) == []
    result = await task
    assert result.exit_code == 0


async def test_auto_acceleration_is_decided_by_a_real_test_boot(
    hypervisor: object, built_image: GuestImage, vm_root: Path, tmp_path: Path
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    records = SqlVMRecords(database)
    root = vm_root / "auto"
    try:
        runner = VMRunner(
            hypervisor,  # type: ignore[arg-type]
            lambda: built_image,
            root,
            records=records,
            accel="auto",
        )
        verdict = await runner.accel()
        probes = records.recent()
        if not os.path.exists("/dev/kvm"):
            assert verdict == "tcg" and probes == [], "no /dev/kvm: TCG without a test boot"
        else:
            (probe,) = probes
            assert probe.accel == "kvm" and probe.job_id is None
            # KVM only when the test boot ran its command; a hang or a crash means TCG.
            assert (verdict == "kvm") == (probe.state == VMState.GONE), probe
        saved = json.loads((root / "accel.json").read_text())
        assert saved["accel"] == verdict
        again = VMRunner(
            hypervisor,  # type: ignore[arg-type]
            lambda: built_image,
            root,
            records=records,
            accel="auto",
        )
        assert again.known_accel() == verdict
        workspace = tmp_path / "ws"
        workspace.mkdir()
        result = await again.run(["true"], workspace, LIMITS)
        assert result.accel == verdict
        assert len(records.recent()) == len(probes) + 1, "the verdict was kept, not re-tested"
        assert leftovers(again) == []
    finally:
        database.dispose()


PORT = (
    "for p in /sys/class/virtio-ports/*; do "
    "[ $(cat $p/name) = {name} ] && echo /dev/${{p##*/}}; done"
)


async def test_a_command_that_floods_a_port_past_its_cap_fails_the_vm(
    runner: VMRunner, tmp_path: Path
) -> None:
    # The agent's reader lets go of the port once it has the first 1000 bytes; the command
    # then opens the port itself.
    port = PORT.format(name="org.ember.stdout")
    script = f"head -c 2000 /dev/zero; sleep 1; head -c 3000000 /dev/zero > $({port}); sleep 60"
    with pytest.raises(VMFailed, match=r"more than 1000 bytes to its org\.ember\.stdout port"):
        await runner.run(
            ["sh", "-c", script],
            tmp_path,
            VMLimits(timeout_s=60.0, disk_mib=16, output_bytes=1000),
        )
    assert leftovers(runner) == []


async def test_a_forged_status_line_fails_the_vm(
    runner: VMRunner, tmp_path: Path, database: Database
) -> None:
    records = SqlVMRecords(database)
    runner._records = records
    script = f"echo 'exit=zero' > $({PORT.format(name='org.ember.status')}); sleep 60"
    with pytest.raises(VMFailed, match=r"the guest agent failed: 'exit=zero'"):
        await runner.run(["sh", "-c", script], tmp_path, LIMITS)
    (vm,) = records.recent()
    assert (vm.state, vm.error_code) == (VMState.FAILED, "vm_failed")
    assert leftovers(runner) == []
