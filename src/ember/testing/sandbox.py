"""The :class:`~ember.sandbox.protocol.Sandbox` contract as a pytest mixin.

An adapter's test module subclasses :class:`SandboxContract` and provides one fixture::

    class TestBubblewrapSandbox(SandboxContract):
        @pytest.fixture
        def sandbox(self): ...   # a Sandbox whose check() passes

The commands the tests run need a POSIX ``sh``, coreutils and ``python3`` inside the sandbox
(``python`` names another interpreter). :meth:`SandboxContract.leftovers` is the hook that
finds processes of a command that outlived it; the default scans the host's ``/proc``, which
fits every runner whose commands are host processes (a VM runner overrides it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import ember.sandbox
from ember.errors import BadRequest
from ember.sandbox.protocol import WORKDIR, Sandbox, SandboxCommand, SandboxLimits
from ember.testing._waiting import eventually

__all__ = [
    "SandboxContract",
    "SandboxFixtures",
    "host_processes_with",
]

NOT_PASSED = "EMBER_CONTRACT_HOST_SECRET"


def host_processes_with(marker: str, name: str | None = None) -> list[int]:
    """Pids of host processes whose command line contains ``marker`` (and, given ``name``,
    whose executable's name is ``name``)."""
    found: list[int] = []
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if needle not in cmdline.read():
                    continue
            if name is not None:
                with open(f"/proc/{entry.name}/comm") as comm:
                    if comm.read().strip() != name:
                        continue
            found.append(int(entry.name))
        except OSError:
            continue
    return found


class SandboxFixtures:
    """What both contracts (one-shot runs and sessions) stand on: the class attributes a
    subclass may change (``python``, ``limits``, ``slack_s``), a ``workspace``, a ``marker``
    that finds a test's processes on the host (and kills any left when the test ends), and
    command builders."""

    python: ClassVar[str] = "python3"
    marker_prefix: ClassVar[str] = "ember-contract"
    limits: ClassVar[SandboxLimits] = SandboxLimits(
        wall_s=20.0, cpu_s=20, memory_bytes=256 * 1024 * 1024, processes=64, output_bytes=65536
    )
    slack_s: ClassVar[float] = 5.0

    # -- fixtures and helpers -----------------------------------------------------------

    @pytest.fixture
    def workspace(self, tmp_path: Path) -> Path:
        path = tmp_path / "workspace"
        path.mkdir()
        return path

    @pytest.fixture
    def marker(self) -> Iterator[str]:
        """A unique word to put in a command line, to find its processes on the host."""
        word = f"{self.marker_prefix}-{uuid.uuid4().hex}"
        yield word
        leftovers = self.leftovers(word)
        for pid in leftovers:  # never leave a test's process behind, even when it failed
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self, marker: str) -> list[int]:
        """Processes of a command (found by ``marker``) still alive after it returned."""
        return host_processes_with(marker)

    def py(self, code: str, *args: str) -> list[str]:
        return [self.python, "-c", code, *args]

    def limited(self, **changes: Any) -> SandboxLimits:
        """:attr:`limits` with ``changes``."""
        return dataclasses.replace(self.limits, **changes)

    def sleeper(self, marker: str, *, forks: int = 1, daemon: bool = False) -> list[str]:
        """A command that ignores SIGTERM, starts ``forks`` more processes like itself (or, as
        a ``daemon``, leaves one behind in a new session and exits) and sleeps; ``marker`` is
        on every one's command line."""
        code = (
            "import os, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"for _ in range({forks}):\n"
            "    if os.fork() == 0: break\n"
        )
        if daemon:
            code += "else:\n    sys.exit(0)\nos.setsid()\n"
        code += "time.sleep(1000)\n"
        return self.py(code, marker)


class SandboxContract(SandboxFixtures):
    """Tests every :class:`~ember.sandbox.protocol.Sandbox` must pass.

    Needs a ``sandbox`` fixture (its :meth:`~ember.sandbox.protocol.Sandbox.check` passes)
    and these class attributes, which a subclass may change:

    - ``python``: the interpreter inside the sandbox (default ``python3``);
    - ``limits``: the limits most tests run with (small, to stay fast);
    - ``slack_s``: how much longer than ``wall_s`` a timed-out run may take to return.
    """

    # -- running ------------------------------------------------------------------------

    async def test_runs_a_command_and_returns_its_output(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        result = await sandbox.run(["echo", "hello"], workspace, self.limits)
        assert result.ok and result.exit_code == 0 and result.signal is None
        assert result.stdout == b"hello\n" and result.stderr == b""
        assert result.killed is None and not result.stdout_truncated
        assert result.duration_s > 0

    async def test_exit_codes_and_stderr_are_reported(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        result = await sandbox.run(["sh", "-c", "echo oops >&2; exit 3"], workspace, self.limits)
        assert result.exit_code == 3 and not result.ok
        assert result.stderr == b"oops\n" and result.stdout == b""

    async def test_a_missing_command_is_a_result(self, sandbox: Sandbox, workspace: Path) -> None:
        result = await sandbox.run(["no-such-command-here"], workspace, self.limits)
        assert result.exit_code == 127 and not result.ok

    async def test_a_signal_is_reported(self, sandbox: Sandbox, workspace: Path) -> None:
        result = await sandbox.run(["sh", "-c", "kill -TERM $$"], workspace, self.limits)
        assert result.exit_code is None and result.signal == signal.SIGTERM
        assert result.killed is None and not result.ok

    async def test_stdin_is_fed_then_closed(self, sandbox: Sandbox, workspace: Path) -> None:
        result = await sandbox.run(["cat"], workspace, self.limits, stdin=b"abc\n")
        assert result.stdout == b"abc\n"
        big = os.urandom(1024 * 1024)
        result = await sandbox.run(["wc", "-c"], workspace, self.limits, stdin=big)
        assert result.stdout.strip() == str(len(big)).encode()

    async def test_without_stdin_the_command_reads_nothing(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        result = await sandbox.run(["cat"], workspace, self.limits)
        assert result.ok and result.stdout == b""

    async def test_a_command_that_ignores_stdin_is_not_blocked(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        result = await sandbox.run(["true"], workspace, self.limits, stdin=b"x" * 4_000_000)
        assert result.ok

    async def test_commands_run_side_by_side(self, sandbox: Sandbox, workspace: Path) -> None:
        runs = [
            sandbox.run(["sh", "-c", f"sleep 0.2; echo {n}"], workspace, self.limits)
            for n in range(4)
        ]
        results = await asyncio.gather(*runs)
        assert [result.stdout for result in results] == [f"{n}\n".encode() for n in range(4)]

    # -- environment --------------------------------------------------------------------

    async def test_env_is_passed(self, sandbox: Sandbox, workspace: Path) -> None:
        env = {"EMBER_TOOL_VALUE": "a b=c", "OTHER": ""}
        result = await sandbox.run(
            ["sh", "-c", "printenv EMBER_TOOL_VALUE"], workspace, self.limits, env=env
        )
        assert result.stdout == b"a b=c\n"

    async def test_the_host_environment_is_not_passed(
        self, sandbox: Sandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NOT_PASSED, "host-only-value")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-contract-host-key")
        result = await sandbox.run(["env"], workspace, self.limits)
        names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
        assert b"host-only-value" not in result.stdout and b"sk-contract" not in result.stdout
        assert {"PATH", "HOME", "LANG"} <= names
        assert names <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_"}

    async def test_env_names_that_cannot_be_passed_are_refused(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        for env in ({"A=B": "x"}, {"": "x"}, {"A": "x\0y"}):
            with pytest.raises(BadRequest):
                await sandbox.run(["true"], workspace, self.limits, env=env)

    async def test_bad_requests_are_refused_before_anything_runs(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        with pytest.raises(BadRequest):
            await sandbox.run([], workspace, self.limits)
        with pytest.raises(BadRequest):
            await sandbox.run(["true"], workspace / "missing", self.limits)
        with pytest.raises(BadRequest):
            await sandbox.run(["true"], workspace, SandboxLimits(wall_s=-1))

    # -- filesystem ---------------------------------------------------------------------

    async def test_the_workspace_is_the_writable_working_directory(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        (workspace / "given.txt").write_text("from the host")
        script = "pwd; cat given.txt; echo; echo made > made.txt; mkdir -p d/e; echo x > d/e/f"
        result = await sandbox.run(["sh", "-c", script], workspace, self.limits)
        assert result.ok, result.stderr
        assert result.stdout == f"{WORKDIR}\nfrom the host\n".encode()
        assert (workspace / "made.txt").read_text() == "made\n"
        assert (workspace / "d" / "e" / "f").read_text() == "x\n"
        again = await sandbox.run(["cat", "made.txt"], workspace, self.limits)
        assert again.stdout == b"made\n"

    async def test_nothing_else_is_writable(self, sandbox: Sandbox, workspace: Path) -> None:
        places = ["/", "/usr", "/usr/bin", "/etc", "/bin", "/var", "/proc/sys/kernel", "/dev"]
        code = (
            "import os, sys\n"
            "for place in sys.argv[1:]:\n"
            "    try:\n"
            "        with open(os.path.join(place, 'ember-probe'), 'w') as f: f.write('x')\n"
            "        print('WROTE', place)\n"
            "    except OSError as exc:\n"
            "        print('refused', place, exc.errno)\n"
        )
        result = await sandbox.run([*self.py(code), *places], workspace, self.limits)
        assert result.ok, result.stderr
        assert b"WROTE" not in result.stdout, result.stdout.decode()
        assert result.stdout.count(b"refused") == len(places)

    async def test_tmp_is_private_and_thrown_away(self, sandbox: Sandbox, workspace: Path) -> None:
        name = f"ember-contract-{uuid.uuid4().hex}"
        first = await sandbox.run(
            ["sh", "-c", f"echo x > /tmp/{name} && cat /tmp/{name}"], workspace, self.limits
        )
        assert first.stdout == b"x\n"
        assert not Path("/tmp", name).exists()
        second = await sandbox.run(["test", "-e", f"/tmp/{name}"], workspace, self.limits)
        assert second.exit_code == 1

    # -- read-only paths ----------------------------------------------------------------

    def shown_directory(self) -> Path:
        """A host directory the read-only tests show to commands: the source of
        ``ember.sandbox`` (outside every refused tree wherever the repository is)."""
        return Path(ember.sandbox.__file__).resolve().parent

    def read_only_probe(self, shown: Path) -> list[str]:
        """A command that reads ``shown/protocol.py``, tries to write into ``shown`` and
        looks for ``shown/../errors.py`` (on the host, next to it, never shown)."""
        code = (
            "import os, sys\n"
            "shown = sys.argv[1]\n"
            "print(open(os.path.join(shown, 'protocol.py')).readline().strip())\n"
            "try:\n"
            "    open(os.path.join(shown, 'ember-probe'), 'w')\n"
            "    print('WROTE')\n"
            "except OSError as exc:\n"
            "    print('refused', exc.errno)\n"
            "print(os.path.exists(os.path.join(shown, '..', 'errors.py')))\n"
        )
        return [*self.py(code), str(shown)]

    async def test_read_only_paths_are_shown_at_their_path_and_nothing_beside(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        shown = self.shown_directory()
        first = (shown / "protocol.py").read_text().splitlines()[0]
        result = await sandbox.run(
            self.read_only_probe(shown), workspace, self.limits, read_only_paths=[str(shown)]
        )
        assert result.ok, result.stderr
        assert result.stdout.decode().splitlines() == [first, f"refused {errno.EROFS}", "False"]
        assert not (shown / "ember-probe").exists()
        unshown = await sandbox.run(self.read_only_probe(shown), workspace, self.limits)
        assert unshown.exit_code != 0 and b"No such file" in unshown.stderr

    async def test_a_long_lived_command_gets_its_read_only_paths(
        self, sandbox: Sandbox, workspace: Path
    ) -> None:
        shown = self.shown_directory()
        command = sandbox.command(
            self.read_only_probe(shown), workspace, self.limits, read_only_paths=[str(shown)]
        )
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            env=dict(command.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), self.slack_s * 2)
        assert process.returncode == 0
        assert out.decode().splitlines()[1:] == [f"refused {errno.EROFS}", "False"]

    async def test_refused_read_only_paths_are_bad_requests(
        self,
        sandbox: Sandbox,
        workspace: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        shown = self.shown_directory()
        home = tmp_path / "ember-home"
        (home / "models").mkdir(parents=True)
        monkeypatch.setenv("EMBER_HOME", str(home))
        link = tmp_path / "link"
        link.symlink_to(shown)
        refused = [
            "relative/path",
            "/",
            "/tmp",
            "/usr",
            "/home",
            "/etc",
            "/etc/ssl",
            "/proc/self",
            "/sys/kernel",
            "/dev/shm",
            "/run/user",
            "/root/.ssh",
            "/home/someone/.aws/credentials",
            f"{shown}/",
            f"{shown}/../sandbox",
            str(shown / "no-such-file"),
            str(link),
            str(home),
            str(home / "models"),
            str(tmp_path),
            str(workspace),
            str(workspace.parent),
        ]
        for entry in refused:
            with pytest.raises(BadRequest) as caught:
                await sandbox.run(["true"], workspace, self.limits, read_only_paths=[entry])
            assert caught.value.extra.get("path") in (entry, None), entry
            with pytest.raises(BadRequest):
                sandbox.command(["true"], workspace, self.limits, read_only_paths=[entry])

    # -- network ------------------------------------------------------------------------

    async def test_there_is_no_network(self, sandbox: Sandbox, workspace: Path) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            code = (
                "import socket, sys\n"
                "print(sorted(name for _, name in socket.if_nameindex()))\n"
                "s = socket.socket(); s.settimeout(3)\n"
                "try:\n"
                f"    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
                "except OSError as exc:\n"
                "    print('refused', exc.errno)\n"
            )
            result = await sandbox.run(self.py(code), workspace, self.limits)
        assert result.ok, result.stderr
        interfaces, outcome = result.stdout.decode().splitlines()
        assert interfaces in ("[]", "['lo']")
        assert outcome.startswith("refused")

    # -- limits and the process tree ----------------------------------------------------

    async def test_a_timeout_kills_the_whole_tree(
        self, sandbox: Sandbox, workspace: Path, marker: str
    ) -> None:
        started = time.monotonic()
        result = await sandbox.run(
            self.sleeper(marker, forks=3), workspace, self.limited(wall_s=1.0)
        )
        assert result.killed == "timeout" and not result.ok and result.exit_code is None
        assert time.monotonic() - started < 1.0 + self.slack_s
        assert self.leftovers(marker) == []

    async def test_cancelling_kills_the_whole_tree(
        self, sandbox: Sandbox, workspace: Path, marker: str
    ) -> None:
        task = asyncio.ensure_future(
            sandbox.run(self.sleeper(marker, forks=2), workspace, self.limits)
        )

        async def started() -> bool:
            return len(self.leftovers(marker)) >= 3

        await eventually(started, "the command and its children run", self.slack_s * 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert self.leftovers(marker) == []

    async def test_what_a_command_leaves_running_ends_with_it(
        self, sandbox: Sandbox, workspace: Path, marker: str
    ) -> None:
        daemon = " ".join(f"'{part}'" for part in self.sleeper(marker, daemon=True))
        result = await sandbox.run(
            ["sh", "-c", f"{daemon} >/dev/null 2>&1; echo started"], workspace, self.limits
        )
        assert result.ok and result.stdout == b"started\n"
        assert self.leftovers(marker) == []

    async def test_output_is_capped_and_drained(self, sandbox: Sandbox, workspace: Path) -> None:
        code = (
            "import sys\n"
            "for _ in range(80): sys.stdout.write('o' * 65536); sys.stderr.write('e' * 40000)\n"
            "print('end')\n"
        )
        result = await sandbox.run(self.py(code), workspace, self.limited(output_bytes=1000))
        assert result.ok, result.stderr[:200]
        assert result.stdout == b"o" * 1000 and result.stderr == b"e" * 1000
        assert result.stdout_truncated and result.stderr_truncated

    async def test_output_under_the_cap_is_whole(self, sandbox: Sandbox, workspace: Path) -> None:
        result = await sandbox.run(["head", "-c", "5000", "/dev/zero"], workspace, self.limits)
        assert result.stdout == bytes(5000) and not result.stdout_truncated

    async def test_cpu_time_is_limited(self, sandbox: Sandbox, workspace: Path) -> None:
        result = await sandbox.run(self.py("while True: pass"), workspace, self.limited(cpu_s=1))
        assert result.killed == "cpu" and result.exit_code is None

    async def test_file_size_is_limited(self, sandbox: Sandbox, workspace: Path) -> None:
        limits = self.limited(file_size_bytes=1024 * 1024)
        result = await sandbox.run(
            ["sh", "-c", "exec head -c 10000000 /dev/zero > big"], workspace, limits
        )
        assert result.killed == "file_size" and not result.ok
        assert (workspace / "big").stat().st_size <= 1024 * 1024

    # -- long-lived commands ------------------------------------------------------------

    async def test_a_long_lived_command_runs_under_the_same_walls(
        self, sandbox: Sandbox, workspace: Path, marker: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        code = (
            "import os, sys\n"
            "for line in sys.stdin:\n"
            "    print(line.strip(), os.getcwd(), os.path.exists('/etc/shadow'),"
            " os.environ.get('EMBER_TOOL_VALUE'), os.environ.get('"
            + NOT_PASSED
            + "'), flush=True)\n"
        )
        monkeypatch.setenv(NOT_PASSED, "host-only-value")
        command = sandbox.command(
            [*self.py(code), marker], workspace, self.limits, env={"EMBER_TOOL_VALUE": "v"}
        )
        assert isinstance(command, SandboxCommand) and os.path.isabs(command.argv[0])
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            env={**command.env, NOT_PASSED: "host-only-value"},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(b"ping\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), self.slack_s * 2)
            assert line == f"ping {WORKDIR} False v None\n".encode()
            assert self.leftovers(marker)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), self.slack_s * 2)
        assert self.leftovers(marker) == []

    async def test_a_long_lived_command_ends_when_its_stdin_closes(
        self, sandbox: Sandbox, workspace: Path, marker: str
    ) -> None:
        command = sandbox.command(
            [*self.py("import sys\nsys.stdin.read()\nprint('bye')"), marker],
            workspace,
            self.limits,
        )
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            env=dict(command.env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(b"data"), self.slack_s * 2)
        assert out == b"bye\n" and process.returncode == 0
        assert self.leftovers(marker) == []
