"""The bubblewrap runner against the Sandbox contract (with and without cgroups), plus what
is particular to it: readiness checks, error translation, per-command cgroups, the launcher
of long-lived commands."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from ember.errors import SandboxFailed, SandboxUnavailable
from ember.sandbox import BubblewrapSandbox, RunCgroup, SandboxLimits, prerequisites
from ember.sandbox import cgroups as cgroups_module
from ember.testing._waiting import eventually
from ember.testing.sandbox import SandboxContract, host_processes_with
from tests.sandbox.conftest import LIMITS, run_cgroups


@pytest.mark.usefixtures("no_cgroup_left")
class TestBubblewrapSandbox(SandboxContract):
    @pytest.fixture
    def sandbox(self, bubblewrap: BubblewrapSandbox) -> BubblewrapSandbox:
        return bubblewrap


@pytest.fixture(scope="module")
def rlimits_only() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox(use_cgroups=False)
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return sandbox


class TestBubblewrapSandboxWithoutCgroups(SandboxContract):
    """Where no cgroup is writable the walls hold the same; only totals weaken (documented)."""

    @pytest.fixture
    def sandbox(self, rlimits_only: BubblewrapSandbox) -> BubblewrapSandbox:
        return rlimits_only

    def test_capabilities_say_what_is_weaker(self, rlimits_only: BubblewrapSandbox) -> None:
        described = rlimits_only.capabilities()
        assert {"seccomp", "network", "wall_s", "cpu_s", "file_size_bytes"} <= described.enforced
        assert "memory_bytes" not in described.enforced and "cpus" not in described.enforced
        assert any("cgroups turned off" in note for note in described.notes)

    async def test_memory_is_an_address_space_limit(
        self, rlimits_only: BubblewrapSandbox, workspace: Path
    ) -> None:
        limits = SandboxLimits(memory_bytes=256 * 1024 * 1024)
        code = "x = bytearray(1 << 30)"
        result = await rlimits_only.run(["python3", "-c", code], workspace, limits)
        assert result.exit_code == 1 and b"MemoryError" in result.stderr


# -- readiness --------------------------------------------------------------------------


def test_capabilities_with_cgroups(bubblewrap: BubblewrapSandbox) -> None:
    described = bubblewrap.capabilities()
    assert described.runner.startswith("bubblewrap ")
    assert {"seccomp", "network", "wall_s", "cpu_s", "output_bytes"} <= described.enforced
    if bubblewrap._cgroups is not None and "memory" in bubblewrap._cgroups.controllers:
        assert "memory_bytes" in described.enforced


def test_a_missing_bwrap_is_named() -> None:
    with pytest.raises(SandboxUnavailable) as caught:
        BubblewrapSandbox(bwrap="no-such-bwrap-here").check()
    assert "no-such-bwrap-here" in caught.value.detail and "not on PATH" in caught.value.detail
    assert caught.value.code == "sandbox_unavailable" and caught.value.status == 503


def test_a_bwrap_that_cannot_run_true_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\n'
        'echo "bwrap: setting up uid map: Permission denied" >&2\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    sandbox = BubblewrapSandbox(bwrap=str(fake), state_dir=tmp_path)
    with pytest.raises(SandboxUnavailable) as caught:
        sandbox.check()
    assert "cannot run a trivial command" in caught.value.detail
    assert "setting up uid map: Permission denied" in caught.value.detail
    assert [path.name for path in tmp_path.iterdir()] == ["bwrap"], "support dir left behind"


def test_user_namespaces_turned_off_are_named(tmp_path: Path) -> None:
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "max_user_namespaces").write_text("0\n")
    with pytest.raises(SandboxUnavailable, match="user namespaces are disabled"):
        prerequisites.check_user_namespaces(tmp_path)
    (tmp_path / "user" / "max_user_namespaces").write_text("1000\n")
    prerequisites.check_user_namespaces(tmp_path)


async def test_support_files_removed_by_a_temp_cleaner_are_made_again(
    tmp_path: Path, workspace: Path
) -> None:
    sandbox = BubblewrapSandbox(state_dir=tmp_path, use_cgroups=False)
    sandbox.check()
    (support,) = [path for path in tmp_path.iterdir() if path.name.startswith("ember-sandbox")]
    (support / "etc" / "passwd").unlink()
    result = await sandbox.run(["true"], workspace, LIMITS)
    assert result.ok


# -- errors at the edge -----------------------------------------------------------------


async def test_a_bubblewrap_setup_failure_is_sandbox_failed(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = bubblewrap._options

    def broken(*args: object, **kwargs: object) -> list[str]:
        return [*options(*args, **kwargs), "--ro-bind", "/no/such/source", "/x"]  # type: ignore[arg-type]

    monkeypatch.setattr(bubblewrap, "_options", broken)
    with pytest.raises(SandboxFailed, match="Can't find source path /no/such/source") as caught:
        await bubblewrap.run(["true"], workspace, LIMITS)
    assert caught.value.code == "sandbox_failed" and caught.value.status == 500


async def test_a_cgroup_that_cannot_be_joined_is_sandbox_failed(
    bubblewrap: BubblewrapSandbox,
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if bubblewrap._cgroups is None:
        pytest.skip("no writable cgroup here")
    monkeypatch.setattr(
        bubblewrap, "_new_cgroup", lambda limits: RunCgroup({"memory": tmp_path / "missing"})
    )
    with pytest.raises(SandboxFailed, match="could not move the command into its cgroup"):
        await bubblewrap.run(["true"], workspace, LIMITS)


async def test_a_cgroup_that_cannot_be_made_is_sandbox_failed(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if bubblewrap._cgroups is None:
        pytest.skip("no writable cgroup here")

    def refuse(limits: SandboxLimits) -> RunCgroup:
        raise PermissionError("cgroup.procs: Permission denied")

    monkeypatch.setattr(bubblewrap._cgroups, "create", refuse)
    with pytest.raises(SandboxFailed, match="could not create the command's cgroup"):
        await bubblewrap.run(["true"], workspace, LIMITS)


@pytest.mark.parametrize("use_cgroups", [True, False])
async def test_bubblewrap_gone_after_check_is_sandbox_unavailable(
    use_cgroups: bool, tmp_path: Path, workspace: Path
) -> None:
    sandbox = BubblewrapSandbox(use_cgroups=use_cgroups, state_dir=tmp_path)
    sandbox.check()
    sandbox._bwrap = str(tmp_path / "uninstalled" / "bwrap")
    with pytest.raises(SandboxUnavailable, match="could not start bubblewrap"):
        await sandbox.run(["true"], workspace, LIMITS)
    assert run_cgroups(sandbox) == []


# -- cgroups and the process tree -------------------------------------------------------


async def test_each_command_gets_its_own_cgroup_with_the_limits(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    if bubblewrap._cgroups is None:
        pytest.skip("no writable cgroup here")
    limits = SandboxLimits(memory_bytes=96 * 1024 * 1024, processes=20, cpus=0.5)
    task = asyncio.ensure_future(bubblewrap.run(["sleep", "5"], workspace, limits))

    async def made() -> list[Path]:
        return run_cgroups(bubblewrap)

    try:
        made_now = await eventually(made, "the command's cgroups exist", 5)
        found = {path.relative_to("/sys/fs/cgroup").parts[0]: path for path in made_now}
        assert set(found) == bubblewrap._cgroups.controllers
        if "memory" in found:
            assert (found["memory"] / "memory.limit_in_bytes").read_text().strip() == str(
                96 * 1024 * 1024
            )
            assert int((found["memory"] / "cgroup.procs").read_text().split()[0]) > 0
        if "pids" in found:
            assert (found["pids"] / "pids.max").read_text().strip() == "22"
        if "cpu" in found:
            assert (found["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert run_cgroups(bubblewrap) == []


@pytest.mark.parametrize("delay_s", [0.0, 0.001, 0.005, 0.02, 0.05])
async def test_cancelling_at_any_moment_leaves_nothing(
    bubblewrap: BubblewrapSandbox, workspace: Path, delay_s: float
) -> None:
    marker = f"ember-cancel-{os.getpid()}-{delay_s}"
    task = asyncio.ensure_future(
        bubblewrap.run(["sh", "-c", "sleep 30 & sleep 30", marker], workspace, LIMITS)
    )
    await asyncio.sleep(delay_s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert host_processes_with(marker) == []
    assert run_cgroups(bubblewrap) == []


# -- the launcher of long-lived commands ------------------------------------------------


async def sweep_leaves_only_zombies(
    bubblewrap: BubblewrapSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a launcher (or ember) was killed outright, the sweep removes the cgroups it left;
    one whose last process is a zombie waiting for the host's init to reap it stays until a
    later sweep, but holds nothing alive (processes still exiting get a moment)."""
    if bubblewrap._cgroups is None:
        return
    monkeypatch.setattr(cgroups_module, "STALE_S", -1.0)
    cgroups = bubblewrap._cgroups

    async def swept() -> bool:
        cgroups.sweep()
        pids = [pid for path in run_cgroups(bubblewrap) for pid in RunCgroup({"": path}).pids()]
        return all(cgroups_module._zombie(pid) for pid in pids)

    await eventually(swept, "the sweep left nothing alive", 10)


async def start(bubblewrap: BubblewrapSandbox, workspace: Path, marker: str, wall_s: float = 30):
    limits = SandboxLimits(wall_s=wall_s, processes=16)
    command = bubblewrap.command(
        ["python3", "-c", "import time\ntime.sleep(1000)", marker], workspace, limits
    )
    process = await asyncio.create_subprocess_exec(
        *command.argv, env=dict(command.env), stdin=asyncio.subprocess.DEVNULL
    )

    async def running() -> bool:  # the command itself, not bubblewrap still setting up
        return bool(host_processes_with(marker, name="python3"))

    await eventually(running, "the long-lived command runs", 10)
    return process


async def test_a_long_lived_command_ends_at_its_wall_clock_limit(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    marker = f"ember-wall-{os.getpid()}"
    process = await start(bubblewrap, workspace, marker, wall_s=1.0)
    assert await asyncio.wait_for(process.wait(), 10) == 128 + signal.SIGKILL
    assert host_processes_with(marker) == []
    assert run_cgroups(bubblewrap) == []


async def test_a_launcher_killed_outright_takes_the_tree_along(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"ember-killed-{os.getpid()}"
    process = await start(bubblewrap, workspace, marker)
    process.kill()
    await process.wait()

    async def gone() -> bool:
        return host_processes_with(marker) == []

    await eventually(gone, "the sandbox died with its launcher", 10)
    assert host_processes_with(marker, name="bwrap") == [], "a bwrap was left behind"
    await sweep_leaves_only_zombies(bubblewrap, monkeypatch)


def test_a_launch_spec_holds_the_env_only_on_disk(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = bubblewrap.command(["true"], workspace, LIMITS, env={"TOOL_TOKEN": "t0ken"})
    spec = Path(command.argv[-1])
    assert "t0ken" not in " ".join(command.argv) and "t0ken" not in str(command.env)
    assert stat.S_IMODE(spec.stat().st_mode) == 0o600 and "t0ken" in spec.read_text()
    spec.unlink()
    if bubblewrap._cgroups is not None:  # never launched: its cgroup waits for the sweep
        monkeypatch.setattr(cgroups_module, "STALE_S", -1.0)
        bubblewrap._cgroups.sweep()
    assert run_cgroups(bubblewrap) == []


async def test_when_ember_dies_its_commands_die_with_it(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"ember-orphan-{os.getpid()}"
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from ember.sandbox import BubblewrapSandbox, SandboxLimits\n"
        "sleeper = 'import os, time\\nos.fork()\\ntime.sleep(1000)'\n"
        "argv = ['python3', '-c', sleeper, sys.argv[2]]\n"
        "sandbox = BubblewrapSandbox(state_dir=Path(sys.argv[3]))\n"
        "asyncio.run(sandbox.run(argv, Path(sys.argv[1]), SandboxLimits()))\n"
    )
    state = workspace.parent / "state"
    state.mkdir()
    ember = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(workspace), marker, str(state)
    )

    async def running() -> bool:
        return len(host_processes_with(marker, name="python3")) == 2

    try:
        await eventually(running, "the command runs", 20)
    finally:
        ember.kill()
        await ember.wait()

    async def gone() -> bool:
        return host_processes_with(marker) == []

    await eventually(gone, "the command died with ember", 10)
    await sweep_leaves_only_zombies(bubblewrap, monkeypatch)
    (left,) = state.iterdir()  # the killed process could not remove its support directory
    BubblewrapSandbox(state_dir=state, use_cgroups=False).check()
    assert left not in list(state.iterdir()), "the next sandbox removes it"
