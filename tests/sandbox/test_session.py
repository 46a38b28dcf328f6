"""Sandbox sessions on bubblewrap against the SandboxSession contract (with and without
cgroups), plus what is particular to them: the session's cgroup, the executor's own safety,
the wire protocol, restarts, cancelling at any moment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import ember.sandbox._executor as executor
from ember.errors import BadRequest, SandboxFailed, SandboxUnavailable
from ember.sandbox import BubblewrapSandbox, SandboxLimits, _frames
from ember.sandbox import bubblewrap as bubblewrap_module
from ember.sandbox import session as session_module
from ember.sandbox.limits import LIMITS_FAILED
from ember.testing._waiting import eventually
from ember.testing.sandbox import host_processes_with
from ember.testing.sandbox_session import SandboxSessionContract, descendants
from tests.sandbox.conftest import LIMITS, run_cgroups


@pytest.fixture(scope="module")
def rlimits_only() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox(use_cgroups=False)
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return sandbox


@pytest.mark.usefixtures("no_cgroup_left")
class TestExecutorSession(SandboxSessionContract):
    @pytest.fixture
    def sandbox(self, bubblewrap: BubblewrapSandbox) -> BubblewrapSandbox:
        return bubblewrap


class TestExecutorSessionWithoutCgroups(SandboxSessionContract):
    @pytest.fixture
    def sandbox(self, rlimits_only: BubblewrapSandbox) -> BubblewrapSandbox:
        return rlimits_only

    async def test_memory_is_an_address_space_limit_per_command(
        self, rlimits_only: BubblewrapSandbox, workspace: Path
    ) -> None:
        async with rlimits_only.session(workspace, LIMITS) as opened:
            result = await opened.run(["python3", "-c", "x = bytearray(1 << 30)"])
            assert result.exit_code == 1 and b"MemoryError" in result.stderr
            assert (await opened.run(["true"])).ok

    async def test_an_address_space_limit_too_small_for_the_executor_is_refused(
        self, rlimits_only: BubblewrapSandbox, workspace: Path
    ) -> None:
        small = SandboxLimits(memory_bytes=16 * 1024 * 1024)
        with pytest.raises(SandboxFailed, match="the limits could not be set"):
            async with rlimits_only.session(workspace, small):
                pass


def server_pid(opened: Any) -> int:
    """The host pid of the executor's server (the parent of every command): the child of
    the keeper, the sandbox's pid 1."""
    opened._live.launch.status.poll()
    keeper = opened._live.launch.status.child_pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == keeper:
                return int(entry.name)
    raise AssertionError("no server found")


# -- the session's cgroup and limits ------------------------------------------------------


async def test_a_session_has_one_cgroup_with_the_limits(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    if bubblewrap._cgroups is None:
        pytest.skip("no writable cgroup here")
    limits = SandboxLimits(memory_bytes=96 * 1024 * 1024, processes=20, cpus=0.5)
    async with bubblewrap.session(workspace, limits) as opened:
        for _ in range(3):
            assert (await opened.run(["true"])).ok
        made = run_cgroups(bubblewrap)
        found = {path.relative_to("/sys/fs/cgroup").parts[0]: path for path in made}
        assert set(found) == bubblewrap._cgroups.controllers, "one cgroup per controller"
        if "pids" in found:  # the command's processes, bubblewrap's two, the server
            assert (found["pids"] / "pids.max").read_text().strip() == "23"
        if "memory" in found:
            limit = (found["memory"] / "memory.limit_in_bytes").read_text().strip()
            assert limit == str(96 * 1024 * 1024)
    assert run_cgroups(bubblewrap) == []


async def test_a_memory_hog_is_killed_and_the_session_goes_on(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    limits = SandboxLimits(wall_s=10.0, memory_bytes=96 * 1024 * 1024)
    code = "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n"
    async with bubblewrap.session(workspace, limits) as opened:
        assert (await opened.run(["sh", "-c", "echo kept > /tmp/kept"])).ok
        result = await opened.run(["python3", "-c", code])
        if "memory_bytes" in bubblewrap.capabilities().enforced:
            assert result.killed == "memory" and result.signal == signal.SIGKILL
        else:
            assert result.exit_code == 1 and b"MemoryError" in result.stderr
        after = await opened.run(["cat", "/tmp/kept"])
        assert after.stdout == b"kept\n", "the OOM killer took the command, not the executor"
        again = await opened.run(["true"])
        assert again.ok and again.killed is None, "an OOM kill counts for its command only"


async def test_tmp_and_shm_share_the_sessions_memory(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    """``/tmp`` and ``/dev/shm`` are each capped at half of ``memory_bytes`` and their files
    stay for the session: full together, they are all of it (docs/sandbox.md says so). The
    writer that goes over is what the OOM killer takes, not the executor; the session then
    has no memory left for any command until it ends."""
    if "memory_bytes" not in bubblewrap.capabilities().enforced:
        pytest.skip("no memory cgroup here")
    limits = SandboxLimits(wall_s=10.0, memory_bytes=64 * 1024 * 1024, file_size_bytes=1 << 40)
    async with bubblewrap.session(workspace, limits) as opened:
        assert (await opened.run(["true"])).ok
        server = server_pid(opened)
        tmp = await opened.run(["sh", "-c", "head -c 10000000000 /dev/zero > /tmp/fill"])
        assert tmp.exit_code == 1 and b"No space left on device" in tmp.stderr
        shm = await opened.run(["sh", "-c", "head -c 10000000000 /dev/zero > /dev/shm/fill"])
        assert shm.killed == "memory" or b"No space left" in shm.stderr
        starved = await opened.run(["true"])
        assert starved.ok or starved.killed == "memory"
        assert server_pid(opened) == server, "the executor was not what the OOM killer took"


async def test_too_few_open_files_for_the_executor_is_a_bad_request(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    with pytest.raises(BadRequest, match="open_files"):
        async with bubblewrap.session(workspace, SandboxLimits(open_files=8)):
            pass


# -- the executor's own safety ------------------------------------------------------------


async def test_a_command_cannot_signal_or_read_the_executor(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    async with bubblewrap.session(workspace, LIMITS) as opened:
        assert (await opened.run(["sh", "-c", "echo kept > /tmp/kept"])).ok
        signals = await opened.run(
            ["sh", "-c", "kill -9 1; kill -INT 1; kill -TERM $PPID; kill -HUP $PPID; echo sent"]
        )
        assert signals.stdout == b"sent\n"
        code = (
            "import os\n"
            "for pid in (1, os.getppid()):\n"
            "    for name in ('mem', 'environ', 'fd/0', 'fd/1'):\n"
            "        try:\n"
            "            open(f'/proc/{pid}/{name}', 'rb').read(1); print(pid, name, 'READ')\n"
            "        except OSError as exc:\n"
            "            print(pid, name, exc.errno)\n"
        )
        probed = await opened.run(["python3", "-c", code])
        assert probed.ok, probed.stderr
        assert b"READ" not in probed.stdout, probed.stdout.decode()
        after = await opened.run(["cat", "/tmp/kept"])
        assert after.stdout == b"kept\n", "the session went on"


async def test_a_command_that_kills_the_executor_ends_the_session_only(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    marker = f"ember-session-kill-{os.getpid()}"
    async with bubblewrap.session(workspace, LIMITS) as opened:
        assert (await opened.run(["sh", "-c", "echo kept > /tmp/kept"])).ok
        with pytest.raises(SandboxFailed, match="executor"):
            await opened.run(["sh", "-c", "kill -9 $PPID; sleep 1000", marker])
        assert host_processes_with(marker) == []
        fresh = await opened.run(["test", "-e", "/tmp/kept"])
        assert fresh.exit_code == 1, "the next run starts a new sandbox"
    assert run_cgroups(bubblewrap) == []


async def test_the_executor_refuses_to_run_outside_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its clean-up is ``kill(-1)``: outside a fresh pid namespace that would reach every
    process of the user on the host. ``os.kill`` is replaced here, so that a broken guard
    records instead of killing."""
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(executor.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    monkeypatch.setattr(executor, "_inside", False)
    assert os.getpid() != 1
    assert executor.main(["-c", json.dumps({"rlimits": []})]) == 2
    with pytest.raises(SystemExit):
        executor.kill_all({})
    assert killed == []


def test_the_executor_knows_the_limits_message() -> None:
    assert executor.LIMITS_FAILED == LIMITS_FAILED


# -- the wire protocol --------------------------------------------------------------------


async def test_a_request_the_executor_cannot_parse_is_sandbox_failed(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bubblewrap.session(workspace, LIMITS) as opened:
        assert (await opened.run(["true"])).ok
        monkeypatch.setattr(session_module, "encode", lambda header, *blobs: b"\0\0\0\5hello")
        with pytest.raises(SandboxFailed, match="executor"):
            await opened.run(["true"])
        monkeypatch.undo()
        assert (await opened.run(["echo", "again"])).stdout == b"again\n"


async def frames(data: bytes) -> _frames.Message:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    return await _frames.read_message(stream, max_blob=10)


async def test_replies_that_are_not_the_protocol_are_refused() -> None:
    header, blobs = await frames(_frames.encode({"id": 1}, b"out", b"err"))
    assert header == {"id": 1, "blobs": 2} and blobs == [b"out", b"err"]
    for garbage in (
        b"\xff\xff\xff\xff",
        b"\0\0\0\5hello",
        b"\0\0\0\2[]",
        _frames.encode({"id": 1}, b"x" * 11),
        _frames.encode({"id": 1}, b"", b"", b""),
    ):
        with pytest.raises(_frames.Broken):
            await frames(garbage)
    with pytest.raises(asyncio.IncompleteReadError):
        await frames(_frames.encode({"id": 1}, b"abc")[:-1])


# -- restarts, renewals and set-up failures -----------------------------------------------


async def test_the_server_is_renewed_when_its_cpu_budget_is_spent(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bubblewrap_module.executor_argv

    def renewing(rlimits: Any) -> list[str]:
        argv = original(rlimits)
        config = json.loads(argv[-1])
        config["renew_s"] = 0.0  # after every run
        return [*argv[:-1], json.dumps(config)]

    monkeypatch.setattr(bubblewrap_module, "executor_argv", renewing)
    sandbox = BubblewrapSandbox(use_cgroups=False)
    async with sandbox.session(workspace, LIMITS) as opened:
        assert (await opened.run(["sh", "-c", "echo kept > /tmp/kept"])).ok
        parents = set()
        for _ in range(3):
            result = await opened.run(["sh", "-c", "cat /tmp/kept; echo $PPID"])
            kept, parent = result.stdout.decode().split()
            assert kept == "kept"
            parents.add(parent)
        assert len(parents) == 3, "a fresh server for each run, in the same sandbox"


async def test_a_set_up_failure_is_sandbox_failed_and_leaves_nothing(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = bubblewrap._options

    def broken(*args: object, **kwargs: object) -> list[str]:
        return [*options(*args, **kwargs), "--ro-bind", "/no/such/source", "/x"]  # type: ignore[arg-type]

    monkeypatch.setattr(bubblewrap, "_options", broken)
    before = descendants(os.getpid())
    with pytest.raises(SandboxFailed, match="Can't find source path /no/such/source"):
        async with bubblewrap.session(workspace, LIMITS):
            pass
    assert descendants(os.getpid()) - before == set()
    assert run_cgroups(bubblewrap) == []


# -- cancelling ---------------------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.0, 0.001, 0.005, 0.02, 0.05])
async def test_cancelling_a_run_at_any_moment_leaves_nothing(
    bubblewrap: BubblewrapSandbox, workspace: Path, delay_s: float
) -> None:
    marker = f"ember-session-cancel-{os.getpid()}-{delay_s}"
    async with bubblewrap.session(workspace, LIMITS) as opened:
        assert (await opened.run(["sh", "-c", "echo kept > /tmp/kept"])).ok
        task = asyncio.ensure_future(opened.run(["sh", "-c", "sleep 30 & sleep 30", marker]))
        await asyncio.sleep(delay_s)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 2.0, "the stop was heard at once"
        assert host_processes_with(marker) == []
        after = await opened.run(["cat", "/tmp/kept"])
        assert after.stdout == b"kept\n", "the command was stopped, not the session"
    assert run_cgroups(bubblewrap) == []


async def test_a_stop_that_gets_no_answer_kills_the_session(
    bubblewrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"ember-session-deaf-{os.getpid()}"
    monkeypatch.setattr(session_module, "REPLY_GRACE_S", 0.5)
    async with bubblewrap.session(workspace, LIMITS) as opened:
        live = opened._live
        assert live is not None
        task = asyncio.ensure_future(opened.run(["sh", "-c", "sleep 30", marker]))

        async def started() -> bool:
            return bool(host_processes_with(marker))

        await eventually(started, "the command runs", 10)
        os.kill(server_pid(opened), signal.SIGSTOP)  # the executor hears nothing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert host_processes_with(marker) == []
        assert opened._live is None and not live.alive
        assert (await opened.run(["true"])).ok, "the next run starts a new sandbox"
