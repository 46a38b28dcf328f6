"""The :class:`~ember.sandbox.protocol.SandboxSession` contract as a pytest mixin.

An adapter's test module subclasses :class:`SandboxSessionContract` and provides the same
``sandbox`` fixture as for :class:`~ember.testing.sandbox.SandboxContract`::

    class TestExecutorSession(SandboxSessionContract):
        @pytest.fixture
        def sandbox(self): ...   # a Sandbox whose check() passes

It checks that a session's commands get what one-shot commands get (the same results, walls
and limits), what the protocol says differs (files in ``/tmp`` persist, the wall clock is
per command), that no process of a command outlives its run, that cancelling and leaving the
context leave nothing behind, and runs escape probes (``/etc/shadow``, writing outside the
workspace, a loopback listener the test opens, ``ptrace``, ``io_uring``) through a session.
Network probes address only listeners the test itself opens on 127.0.0.1.
:meth:`SandboxSessionContract.leftovers` and :meth:`~SandboxSessionContract.children` are
the hooks that find processes left behind; the defaults scan the host's ``/proc``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from ember.errors import BadRequest, SandboxFailed
from ember.sandbox.protocol import WORKDIR, Sandbox, SandboxSession
from ember.testing._waiting import eventually
from ember.testing.sandbox import NOT_PASSED, SandboxFixtures

__all__ = ["SandboxSessionContract", "descendants"]

SYSCALL = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "def call(number, *args):\n"
    "    ctypes.set_errno(0)\n"
    "    args = [ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]\n"
    "    return libc.syscall(ctypes.c_long(number), *args), ctypes.get_errno()\n"
)
"""Python inside the sandbox calling raw x86_64 system calls through libc's ``syscall``."""


def descendants(pid: int) -> set[int]:
    """Every live (not zombie) process below ``pid`` on the host."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] not in ("Z", "X"):
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class SandboxSessionContract(SandboxFixtures):
    """Tests every :meth:`~ember.sandbox.protocol.Sandbox.session` must pass.

    Needs a ``sandbox`` fixture and these class attributes, which a subclass may change:
    ``python`` (the interpreter inside), ``limits`` (small, to stay fast) and ``slack_s``
    (how much longer than ``wall_s`` a timed-out run may take to return).
    """

    marker_prefix: ClassVar[str] = "ember-session-contract"

    @pytest.fixture
    async def session(self, sandbox: Sandbox, workspace: Path) -> AsyncIterator[SandboxSession]:
        async with sandbox.session(workspace, self.limits) as opened:
            yield opened

    def children(self) -> set[int]:
        """Processes this test process started (directly or not) that are alive now."""
        return descendants(os.getpid())

    # -- the same results as one-shot runs ------------------------------------------------

    async def test_results_match_one_shot_runs(
        self, sandbox: Sandbox, session: SandboxSession, workspace: Path
    ) -> None:
        commands: list[tuple[list[str], bytes | None]] = [
            (["echo", "hello"], None),
            (["sh", "-c", "echo oops >&2; exit 3"], None),
            (["no-such-command-here"], None),
            (["sh", "-c", "kill -TERM $$"], None),
            (["sh", "-c", "exit 130"], None),
            (["cat"], b"abc\n"),
            (["cat"], None),
            (["wc", "-c"], os.urandom(1024 * 1024)),
            (["true"], b"x" * 4_000_000),
            (["head", "-c", "5000", "/dev/zero"], None),
            (["sh", "-c", "pwd; printf '%s' \"$HOME\"; ls -A"], None),
        ]
        for argv, stdin in commands:
            alone = await sandbox.run(argv, workspace, self.limits, stdin=stdin)
            shared = await session.run(argv, stdin=stdin)
            seen = (shared.exit_code, shared.signal, shared.killed, shared.stdout_truncated)
            assert seen == (alone.exit_code, alone.signal, alone.killed, alone.stdout_truncated)
            assert shared.stdout == alone.stdout, argv
            if not alone.stderr:  # one-shot's init adds its own notes ("Terminated")
                assert shared.stderr == b"", argv
            assert shared.duration_s > 0
        missing = await session.run(["no-such-command-here"])
        assert missing.exit_code == 127 and b"not found" in missing.stderr

    async def test_output_is_capped_and_drained(self, sandbox: Sandbox, workspace: Path) -> None:
        code = (
            "import sys\n"
            "for _ in range(80): sys.stdout.write('o' * 65536); sys.stderr.write('e' * 40000)\n"
            "print('end')\n"
        )
        async with sandbox.session(workspace, self.limited(output_bytes=1000)) as session:
            result = await session.run(self.py(code))
            assert result.ok, result.stderr[:200]
            assert result.stdout == b"o" * 1000 and result.stderr == b"e" * 1000
            assert result.stdout_truncated and result.stderr_truncated
            whole = await session.run(["head", "-c", "1000", "/dev/zero"])
            assert whole.stdout == bytes(1000) and not whole.stdout_truncated

    async def test_cpu_and_file_size_are_limited_per_command(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        limits = self.limited(cpu_s=1, file_size_bytes=1024 * 1024)
        async with sandbox.session(workspace, limits) as session:
            spun = await session.run(self.py("while True: pass"))
            assert spun.killed == "cpu" and spun.exit_code is None
            again = await session.run(self.py("while True: pass"))  # a fresh CPU budget
            assert again.killed == "cpu"
            big = await session.run(["sh", "-c", "exec head -c 10000000 /dev/zero > big"])
            assert big.killed == "file_size" and big.signal == signal.SIGXFSZ
            assert (workspace / "big").stat().st_size <= 1024 * 1024
            assert (await session.run(["true"])).ok

    # -- what a session shares --------------------------------------------------------------

    async def test_files_persist_between_commands(
        self, sandbox: Sandbox, session: SandboxSession, workspace: Path
    ) -> None:
        name = f"ember-session-{uuid.uuid4().hex}"
        made = await session.run(["sh", "-c", f"echo kept > /tmp/{name}; echo w > made.txt"])
        assert made.ok, made.stderr
        seen = await session.run(["cat", f"/tmp/{name}", "made.txt"])
        assert seen.stdout == b"kept\nw\n"
        assert not Path("/tmp", name).exists(), "the session's /tmp is its own"
        assert (workspace / "made.txt").read_text() == "w\n"
        async with sandbox.session(workspace, self.limits) as other:
            fresh = await other.run(["test", "-e", f"/tmp/{name}"])
            assert fresh.exit_code == 1, "another session has its own /tmp"

    async def test_the_environment_is_the_sessions(
        self, sandbox: Sandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NOT_PASSED, "host-only-value")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-contract-host-key")
        env = {"EMBER_TOOL_VALUE": "a b=c"}
        async with sandbox.session(workspace, self.limits, env=env) as session:
            result = await session.run(["env"])
            value = await session.run(["printenv", "EMBER_TOOL_VALUE"])
        names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
        assert b"host-only-value" not in result.stdout and b"sk-contract" not in result.stdout
        assert {"PATH", "HOME", "LANG", "EMBER_TOOL_VALUE"} <= names
        assert names <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "EMBER_TOOL_VALUE"}
        assert value.stdout == b"a b=c\n"

    async def test_read_only_paths_are_shown(self, sandbox: Sandbox, workspace: Path) -> None:
        shown = Path(__file__).resolve().parent
        code = (
            "import os, sys\n"
            "print(os.path.exists(os.path.join(sys.argv[1], 'sandbox_session.py')))\n"
            "try:\n"
            "    open(os.path.join(sys.argv[1], 'ember-probe'), 'w'); print('WROTE')\n"
            "except OSError as exc:\n"
            "    print('refused', exc.errno)\n"
        )
        async with sandbox.session(workspace, self.limits, read_only_paths=[str(shown)]) as session:
            result = await session.run(self.py(code, str(shown)))
        assert result.stdout.decode().split() == ["True", "refused", str(errno.EROFS)]

    async def test_commands_run_one_at_a_time(self, session: SandboxSession) -> None:
        script = (
            "[ -e /tmp/busy ] && echo overlap; touch /tmp/busy; sleep 0.2; rm /tmp/busy; echo $0"
        )
        runs = [session.run(["sh", "-c", script, str(n)]) for n in range(3)]
        results = await asyncio.gather(*runs)
        assert [result.stdout for result in results] == [f"{n}\n".encode() for n in range(3)]

    async def test_bad_requests_are_refused(
        self, sandbox: Sandbox, session: SandboxSession, workspace: Path
    ) -> None:
        with pytest.raises(BadRequest):
            await session.run([])
        with pytest.raises(BadRequest):
            await session.run(["echo", "a\0b"])
        with pytest.raises(BadRequest):
            await session.run(["true"], timeout_s=0)
        with pytest.raises(BadRequest):
            async with sandbox.session(workspace / "missing", self.limits):
                pass
        with pytest.raises(BadRequest):
            async with sandbox.session(workspace, self.limits, env={"A=B": "x"}):
                pass
        assert (await session.run(["true"])).ok

    # -- processes: none outlives its command -----------------------------------------------

    async def test_a_timeout_kills_the_tree_and_the_session_goes_on(
        self, session: SandboxSession, marker: str
    ) -> None:
        assert (await session.run(["sh", "-c", "echo before > /tmp/kept"])).ok
        started = time.monotonic()
        result = await session.run(self.sleeper(marker, forks=3), timeout_s=1.0)
        assert result.killed == "timeout" and result.exit_code is None
        assert result.signal == signal.SIGKILL
        assert time.monotonic() - started < 1.0 + self.slack_s
        assert self.leftovers(marker) == []
        after = await session.run(["cat", "/tmp/kept"])
        assert after.stdout == b"before\n", "the session went on"

    async def test_the_wall_clock_limit_is_per_command(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        async with sandbox.session(workspace, self.limited(wall_s=1.0)) as session:
            for _ in range(3):  # 3 x 0.6 s: more than wall_s together, less each
                assert (await session.run(["sleep", "0.6"])).ok
            capped = await session.run(["sleep", "5"], timeout_s=60)
            assert capped.killed == "timeout" and capped.duration_s < 1.0 + self.slack_s

    async def test_a_daemon_does_not_outlive_its_command(
        self, session: SandboxSession, marker: str
    ) -> None:
        daemon = " ".join(f"'{part}'" for part in self.sleeper(marker, daemon=True))
        result = await session.run(["sh", "-c", f"{daemon} >/dev/null 2>&1; echo started"])
        assert result.ok and result.stdout == b"started\n"
        assert self.leftovers(marker) == []

    async def test_a_command_sees_no_process_of_an_earlier_one(
        self, session: SandboxSession, marker: str
    ) -> None:
        sleeper = " ".join(f"'{part}'" for part in self.sleeper(marker))
        background = await session.run(["sh", "-c", f"{sleeper} >/dev/null 2>&1 & echo ok"])
        assert background.ok and self.leftovers(marker) == []
        code = (
            "import os\n"
            "mine = os.getpid()\n"
            "for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):\n"
            "    if pid != mine:\n"
            "        print(open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ')"
            "[:60])\n"
        )
        listed = await session.run(self.py(code))
        assert listed.ok, listed.stderr
        assert marker.encode() not in listed.stdout

    async def test_cancelling_kills_the_whole_tree(
        self, session: SandboxSession, marker: str
    ) -> None:
        task = asyncio.ensure_future(session.run(self.sleeper(marker, forks=2)))

        async def started() -> bool:
            return len(self.leftovers(marker)) >= 3

        await eventually(started, "the command and its children run", self.slack_s * 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert self.leftovers(marker) == []
        assert (await session.run(["echo", "on"])).stdout == b"on\n"

    async def test_leaving_the_context_leaves_no_process(
        self, sandbox: Sandbox, workspace: Path, marker: str
    ) -> None:
        before = self.children()
        async with sandbox.session(workspace, self.limits) as session:
            assert (await session.run(["true"])).ok
            assert self.children() - before, "the session's sandbox runs"
            task = asyncio.ensure_future(session.run(self.sleeper(marker, forks=2)))

            async def started() -> bool:
                return len(self.leftovers(marker)) >= 3

            await eventually(started, "the command runs", self.slack_s * 2)
        assert self.leftovers(marker) == []
        assert self.children() - before == set(), "a process of the session outlived it"
        with pytest.raises(SandboxFailed):
            await task  # its session ended under it
        with pytest.raises(SandboxFailed):
            await session.run(["true"])

    async def test_cancelling_while_it_opens_leaves_no_process(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        before = self.children()
        for delay_s in (0.0, 0.002, 0.01, 0.03):

            async def open_and_run() -> None:
                async with sandbox.session(workspace, self.limits) as session:
                    await session.run(["sleep", "30"])

            task = asyncio.ensure_future(open_and_run())
            await asyncio.sleep(delay_s)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert self.children() - before == set(), delay_s

    # -- escapes, per command ---------------------------------------------------------------

    async def test_escape_probes_fail_in_a_session(
        self, session: SandboxSession, workspace: Path, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside.txt"
        outside.write_text("host secret next to the workspace\n")
        shadow = await session.run(["sh", "-c", "cat /etc/shadow; ls /etc/shadow"])
        assert shadow.exit_code != 0 and shadow.stdout == b""
        code = (
            "import sys\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n"
            "        open(path, 'a').write('x'); print(path, 0)\n"
            "    except OSError as exc:\n"
            "        print(path, exc.errno)\n"
        )
        wrote = await session.run(self.py(code, str(outside), "/x", "/etc/x", "/usr/x"))
        assert wrote.ok and b" 0\n" not in wrote.stdout, wrote.stdout
        assert outside.read_text() == "host secret next to the workspace\n"
        assert sorted(path.name for path in tmp_path.iterdir()) == ["outside.txt", "workspace"]

    async def test_a_loopback_listener_cannot_be_reached(self, session: SandboxSession) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            port = listener.getsockname()[1]
            code = (
                "import socket\n"
                "s = socket.socket(); s.settimeout(3)\n"
                "try:\n"
                f"    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
                "except OSError as exc:\n"
                "    print('refused', exc.errno)\n"
            )
            result = await session.run(self.py(code))
            with pytest.raises(BlockingIOError):
                listener.accept()
        assert result.stdout == f"refused {errno.ECONNREFUSED}\n".encode()

    async def test_ptrace_and_io_uring_are_refused(self, session: SandboxSession) -> None:
        code = SYSCALL + (
            "import time\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(30)\n"
            "    os._exit(0)\n"
            "print('attach', call(101, 16, child, 0, 0)[1])\n"  # PTRACE_ATTACH
            "print('attach_pid1', call(101, 16, 1, 0, 0)[1])\n"
            "print('io_uring_setup', call(425, 1, ctypes.create_string_buffer(120))[1])\n"
            "os.kill(child, 9)\n"
        )
        result = await session.run(self.py(code))
        assert result.ok, result.stderr
        found = dict(line.split() for line in result.stdout.decode().splitlines())
        assert found == {
            "attach": str(errno.EPERM),
            "attach_pid1": str(errno.EPERM),
            "io_uring_setup": str(errno.ENOSYS),
        }

    async def test_the_walls_hold_for_every_command(self, session: SandboxSession) -> None:
        script = (
            "unshare -U true 2>/dev/null && echo UNSHARED; "
            "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; pwd"
        )
        for _ in range(2):
            result = await session.run(["sh", "-c", script])
            assert b"UNSHARED" not in result.stdout
            lines = result.stdout.decode().splitlines()
            assert lines[-1] == WORKDIR
            status = dict(line.split(":\t") for line in lines[:-1])
            assert status == {
                "CapEff": "0000000000000000",
                "CapBnd": "0000000000000000",
                "NoNewPrivs": "1",
                "Seccomp": "2",
            }
