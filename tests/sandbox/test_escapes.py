"""The escape suite: real bubblewrap, real attempts to get out, each one contained.

Every test runs a command that tries one way out, asserts the clear outcome (an errno, a
signal, a ``killed`` reason), and asserts that no process of it is left on the host. Network
probes target only loopback listeners the test itself opens (127.0.0.1, 127.0.0.2, a Unix
socket, an abstract Unix socket); nothing else is ever addressed. Limits are small, so the
whole file runs in seconds.

Each test runs twice: each command in a one-shot sandbox, and each command in a sandbox
session (one per test and set of limits, so the commands of a test share it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ember.sandbox import BubblewrapSandbox, CommandResult, SandboxLimits
from ember.sandbox.protocol import SandboxSession
from ember.testing.sandbox import host_processes_with

LIMITS = SandboxLimits(
    wall_s=10.0, cpu_s=10, memory_bytes=128 * 1024 * 1024, processes=32, output_bytes=65536
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host file next to the workspace, which the sandbox must not reach."""
    path = tmp_path / "outside.txt"
    path.write_text("host secret next to the workspace\n")
    return path


class Probe:
    """Runs commands with a unique marker on their command line, and after each one checks
    that none of its processes is left on the host. ``sessions``: run them in sandbox
    sessions (one per set of limits, closed with the stack) instead of one-shot runs."""

    def __init__(
        self,
        sandbox: BubblewrapSandbox,
        workspace: Path,
        sessions: contextlib.AsyncExitStack | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.workspace = workspace
        self.marker = f"ember-escape-{uuid.uuid4().hex}"
        self.sessions = sessions
        self._opened: dict[SandboxLimits, SandboxSession] = {}

    async def sh(self, script: str, limits: SandboxLimits = LIMITS) -> CommandResult:
        return await self.run(["sh", "-c", script, self.marker], limits)

    async def py(self, code: str, *args: str, limits: SandboxLimits = LIMITS) -> CommandResult:
        return await self.run(["python3", "-c", code, self.marker, *args], limits)

    async def run(self, argv: list[str], limits: SandboxLimits = LIMITS) -> CommandResult:
        if self.sessions is None:
            result = await self.sandbox.run(argv, self.workspace, limits)
        else:
            if limits not in self._opened:
                opened = self.sandbox.session(self.workspace, limits)
                self._opened[limits] = await self.sessions.enter_async_context(opened)
            result = await self._opened[limits].run(argv)
        assert host_processes_with(self.marker) == [], "a process of the command outlived it"
        return result

    def cleanup(self) -> None:
        for pid in host_processes_with(self.marker):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["one-shot", "session"])
async def probe(
    request: pytest.FixtureRequest, bubblewrap: BubblewrapSandbox, workspace: Path
) -> AsyncIterator[Probe]:
    async with contextlib.AsyncExitStack() as sessions:
        found = Probe(bubblewrap, workspace, sessions if request.param == "session" else None)
        try:
            yield found
        finally:
            found.cleanup()


SYSCALL = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "def call(number, *args):\n"
    "    ctypes.set_errno(0)\n"
    "    args = [ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]\n"
    "    result = libc.syscall(ctypes.c_long(number), *args)\n"
    "    return result, ctypes.get_errno()\n"
)
"""Python inside the sandbox calling raw system calls through libc's ``syscall``."""


def errnos(result: CommandResult) -> dict[str, int]:
    """``name errno`` lines printed by a probe, as a dict."""
    assert result.exit_code == 0, result.stderr.decode()
    pairs = (line.split() for line in result.stdout.decode().splitlines() if line.strip())
    return {name: int(code) for name, code in pairs}


# -- files --------------------------------------------------------------------------------


async def test_etc_shadow_cannot_be_read(probe: Probe) -> None:
    assert Path("/etc/shadow").exists(), "the host needs an /etc/shadow for this test"
    result = await probe.sh("cat /etc/shadow; ls /etc/shadow /etc/gshadow /etc/sudoers")
    assert result.exit_code != 0 and result.stdout == b""
    assert b"No such file" in result.stderr


async def test_ember_home_and_database_are_not_visible(
    probe: Probe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "ember-home"
    (home / "models").mkdir(parents=True)
    with sqlite3.connect(home / "ember.db") as db:
        db.execute("create table api_tokens (hash text)")
        db.execute("insert into api_tokens values ('token-hash-secret')")
    db.close()
    (home / "tokens").write_text("ember-token-secret\n")
    (home / "models" / "model.gguf").write_bytes(b"GGUF" + bytes(64))
    monkeypatch.setenv("EMBER_HOME", str(home))
    monkeypatch.setenv("EMBER_DATABASE_URL", f"sqlite:///{home / 'ember.db'}")
    code = (
        "import os, sys\n"
        "for path in sys.argv[2:]:\n"
        "    print(path, os.path.exists(path))\n"
        "print('env', sorted(k for k in os.environ if k.startswith('EMBER')))\n"
    )
    paths = [str(home), str(home / "ember.db"), str(home / "tokens"), str(Path.home())]
    result = await probe.py(code, *paths, str(Path.home() / ".ember"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert all(line.endswith(" False") for line in lines[:-1]), lines
    assert lines[-1] == "env []"


async def test_a_file_outside_the_workspace_cannot_be_read_or_written(
    probe: Probe, outside: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "for path in sys.argv[2:]:\n"
        "    try:\n"
        "        open(path).read(); print(path, 0)\n"
        "    except OSError as exc:\n"
        "        print(path, exc.errno)\n"
        "for path in ['/x', '/usr/x', '/etc/x', '/root/x', sys.argv[2] + '.w']:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); print(path, 0)\n"
        "    except OSError as exc:\n"
        "        print(path, exc.errno)\n"
    )
    result = await probe.py(code, str(outside), str(tmp_path / "workspace" / ".." / "outside.txt"))
    codes = errnos(result)
    assert 0 not in codes.values(), codes
    assert not Path(f"{outside}.w").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outside.txt", "workspace"]


async def test_symlinks_the_host_puts_in_the_workspace_lead_nowhere(
    probe: Probe, outside: Path
) -> None:
    (probe.workspace / "absolute").symlink_to(outside)
    (probe.workspace / "relative").symlink_to(Path("..") / outside.name)
    (probe.workspace / "shadow").symlink_to("/etc/shadow")
    result = await probe.sh("for f in absolute relative shadow; do cat $f || echo refused; done")
    assert result.stdout == b"refused\nrefused\nrefused\n"
    assert b"host secret" not in result.stdout


async def test_links_made_inside_point_nowhere_on_the_host(probe: Probe, outside: Path) -> None:
    script = (
        f"ln -s {outside} out-link && cat out-link; "
        "ln -s /etc/shadow shadow-link; "
        "ln /etc/hostname hard-etc || echo refused-etc; "
        "ln /usr/bin/python3 hard-usr || echo refused-usr; "
        "echo tmp > /tmp/t && ln /tmp/t hard-tmp || echo refused-tmp"
    )
    result = await probe.sh(script)
    assert result.stdout == b"refused-etc\nrefused-usr\nrefused-tmp\n", result.stderr
    assert b"Invalid cross-device link" in result.stderr
    # what is left in the workspace is only links: the host must not follow them (see docs)
    assert os.readlink(probe.workspace / "shadow-link") == "/etc/shadow"
    assert not (probe.workspace / "hard-etc").exists()


async def test_a_hard_link_the_host_makes_is_the_file_itself(probe: Probe, outside: Path) -> None:
    """The walls are mounts: a hard link the *host* puts in the workspace is the outside file
    under a second name, and the sandbox can read and change it. docs/sandbox.md says so: never
    hard-link into a workspace (``git clone --no-hardlinks`` for a local clone)."""
    os.link(outside, probe.workspace / "hard")
    result = await probe.sh("cat hard")
    assert result.stdout == outside.read_bytes()


# -- processes ----------------------------------------------------------------------------


async def test_the_host_process_list_is_not_visible(probe: Probe) -> None:
    code = (
        "import os\n"
        "pids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"
        "names = [open(f'/proc/{p}/comm').read().strip() for p in pids]\n"
        "print(max(pids), ' '.join(sorted(names)))\n"
    )
    result = await probe.py(code)
    assert result.exit_code == 0, result.stderr
    top, *names = result.stdout.decode().split()
    assert int(top) < 50  # the sandbox's own pid namespace: a handful of small pids
    if probe.sessions is None:
        assert names == ["python3", "sh"]  # the probe and its init; nothing of the host
    else:  # the probe and the session's executor (its keeper and server)
        assert names == ["python3", "python3", "python3"]


async def test_proc_1_environ_holds_nothing_of_the_host(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-escape-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-escape-test-anthropic")
    result = await probe.sh("cat /proc/1/environ; echo; cat /proc/self/environ; echo; env")
    assert result.exit_code == 0, result.stderr
    assert b"sk-escape" not in result.stdout and b"API_KEY" not in result.stdout
    assert b"EMBER" not in result.stdout


async def test_ptrace_of_another_process_is_refused(probe: Probe) -> None:
    code = SYSCALL + (
        "import time\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "print('attach', call(101, 16, child, 0, 0)[1])\n"  # PTRACE_ATTACH
        "print('traceme', call(101, 0, 0, 0, 0)[1])\n"  # PTRACE_TRACEME
        "print('vm_readv', call(310, child, 0, 0, 0, 0, 0)[1])\n"
        "os.kill(child, 9)\n"
    )
    assert errnos(await probe.py(code)) == {
        "attach": errno.EPERM,
        "traceme": errno.EPERM,
        "vm_readv": errno.EPERM,
    }


async def test_the_refused_system_calls_fail_with_their_errno(probe: Probe) -> None:
    calls = {
        "io_uring_setup": (425, 1, "ctypes.create_string_buffer(120)"),
        "io_uring_enter": (426, 0, 0, 0, 0, 0, 0),
        "io_uring_register": (427, 0, 0, 0, 0),
        "bpf": (321, 0, 0, 0),
        "keyctl": (250, 0, 0, 0, 0, 0),
        "add_key": (248, 0, 0, 0, 0, 0),
        "request_key": (249, 0, 0, 0, 0),
        "mount": (165, 0, 0, 0, 0, 0),
        "umount2": (166, 0, 0),
        "unshare": (272, 0x10000000),
        "setns": (308, 0, 0),
        "perf_event_open": (298, 0, 0, 0, 0, 0),
        "clone_newuser": (56, 0x10000000 | 17, 0, 0, 0, 0),
        "clone_newnet": (56, 0x40000000 | 17, 0, 0, 0, 0),
        "clone3": (435, 0, 0),
        "syslog": (103, 3, 0, 0),
    }
    code = SYSCALL + "".join(
        f"print('{name}', call({', '.join(str(a) for a in args)})[1])\n"
        for name, args in calls.items()
    )
    found = errnos(await probe.py(code))
    expected_enosys = {"io_uring_setup", "io_uring_enter", "io_uring_register", "clone3"}
    for name in calls:
        assert found[name] == (errno.ENOSYS if name in expected_enosys else errno.EPERM), name


async def test_raw_and_packet_sockets_are_refused(probe: Probe) -> None:
    code = SYSCALL + (
        "print('packet', call(41, 17, 3, 0)[1])\n"  # AF_PACKET, SOCK_RAW
        "print('packet_dgram', call(41, 17, 2, 0)[1])\n"
        "print('inet_raw', call(41, 2, 3, 1)[1])\n"  # AF_INET, SOCK_RAW, ICMP
        "print('inet6_raw', call(41, 10, 3 | 0x80000, 58)[1])\n"  # SOCK_CLOEXEC too
        "print('packet_high_bits', call(41, (1 << 32) | 17, 3, 0)[1])\n"
    )
    found = errnos(await probe.py(code))
    assert set(found.values()) == {errno.EPERM}, found


async def test_a_foreign_syscall_abi_kills_the_process(probe: Probe) -> None:
    code = SYSCALL + "call(0x40000000 | 39)\nprint('survived')\n"  # x32 getpid
    result = await probe.py(code)
    assert result.signal == signal.SIGSYS and result.stdout == b""


async def test_no_new_user_namespace_nor_privileges(probe: Probe) -> None:
    script = (
        "unshare -U true 2>/dev/null && echo UNSHARED; "
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
    )
    result = await probe.sh(script)
    assert b"UNSHARED" not in result.stdout
    status = dict(line.split(":\t") for line in result.stdout.decode().splitlines())
    assert status == {
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
    }


# -- network ------------------------------------------------------------------------------


async def test_host_listeners_cannot_be_reached(probe: Probe, tmp_path: Path) -> None:
    listeners: list[socket.socket] = []
    try:
        for host in ("127.0.0.1", "127.0.0.2"):
            listener = socket.socket()
            listener.bind((host, 0))
            listener.listen()
            listener.setblocking(False)
            listeners.append(listener)
        unix_path = tmp_path / "host.sock"
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(str(unix_path))
        unix.listen()
        unix.setblocking(False)
        abstract = socket.socket(socket.AF_UNIX)
        abstract_name = f"\0ember-escape-{uuid.uuid4().hex}"
        abstract.bind(abstract_name)
        abstract.listen()
        abstract.setblocking(False)
        listeners += [unix, abstract]
        targets = [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in listeners[:2]]
        code = (
            "import socket, sys\n"
            "def probe(name, family, address):\n"
            "    s = socket.socket(family); s.settimeout(2)\n"
            "    try:\n"
            "        s.connect(address); print(name, 0)\n"
            "    except OSError as exc:\n"
            "        print(name, exc.errno)\n"
            "for target in sys.argv[2:4]:\n"
            "    host, port = target.split(':')\n"
            "    probe(host, socket.AF_INET, (host, int(port)))\n"
            "probe('unix', socket.AF_UNIX, sys.argv[4])\n"
            "probe('abstract', socket.AF_UNIX, sys.argv[5].replace('@', '\\0'))\n"
        )
        result = await probe.py(code, *targets, str(unix_path), abstract_name.replace("\0", "@"))
        assert errnos(result) == {
            "127.0.0.1": errno.ECONNREFUSED,
            "127.0.0.2": errno.ECONNREFUSED,
            "unix": errno.ENOENT,
            "abstract": errno.ECONNREFUSED,
        }
        for listener in listeners:
            with pytest.raises(BlockingIOError):
                listener.accept()
    finally:
        for listener in listeners:
            listener.close()


async def test_only_a_private_loopback_exists(probe: Probe) -> None:
    result = await probe.sh("tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys /run")
    assert result.stdout.split() == [b"lo"]
    assert b"'/sys': No such file" in result.stderr and b"'/run': No such file" in result.stderr


# -- resources ----------------------------------------------------------------------------


async def test_a_fork_bomb_is_contained(probe: Probe) -> None:
    limits = SandboxLimits(wall_s=2.0, cpu_s=10, memory_bytes=128 * 1024 * 1024, processes=16)
    code = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(len(host_processes_with(probe.marker)))
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    try:
        result = await probe.py(code, limits=limits)
    finally:
        watcher.cancel()
    assert result.killed == "timeout"
    # bubblewrap's monitor and init carry the command line too, and count in the pids cgroup
    assert max(seen) <= limits.processes + 2, f"{max(seen)} processes ran at once"


async def test_a_memory_hog_is_killed(probe: Probe, bubblewrap: BubblewrapSandbox) -> None:
    limits = SandboxLimits(wall_s=10.0, memory_bytes=64 * 1024 * 1024)
    code = "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n"
    result = await probe.py(code, limits=limits)
    if "memory_bytes" in bubblewrap.capabilities().enforced:
        assert result.killed == "memory" and result.signal == signal.SIGKILL
    else:  # the address-space rlimit: the allocation fails instead
        assert result.exit_code == 1 and b"MemoryError" in result.stderr


async def test_filling_tmp_is_capped(probe: Probe) -> None:
    limits = SandboxLimits(wall_s=10.0, memory_bytes=64 * 1024 * 1024, file_size_bytes=1 << 40)
    result = await probe.sh("head -c 10000000000 /dev/zero > /tmp/fill", limits)
    assert result.exit_code == 1 and b"No space left on device" in result.stderr
    # in a session /tmp/fill is still there: both full would be all of memory_bytes
    shm = await probe.sh("rm /tmp/fill; head -c 10000000000 /dev/zero > /dev/shm/fill", limits)
    assert shm.exit_code == 1 and b"No space left on device" in shm.stderr


async def test_an_infinite_loop_ends_at_the_wall_clock_limit(probe: Probe) -> None:
    limits = SandboxLimits(wall_s=1.0, cpu_s=100)
    result = await probe.py("while True: pass", limits=limits)
    assert result.killed == "timeout" and result.duration_s < 5


async def test_a_process_that_ignores_sigterm_is_killed(probe: Probe) -> None:
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "time.sleep(1000)\n"
    )
    result = await probe.py(code, limits=SandboxLimits(wall_s=1.0))
    assert result.killed == "timeout" and result.signal == signal.SIGKILL


async def test_a_10_gb_file_is_stopped_at_the_file_size_limit(probe: Probe) -> None:
    limits = SandboxLimits(wall_s=10.0, file_size_bytes=1024 * 1024)
    result = await probe.sh("exec head -c 10000000000 /dev/zero > big", limits)
    assert result.killed == "file_size" and result.signal == signal.SIGXFSZ
    assert (probe.workspace / "big").stat().st_size == 1024 * 1024
    written = await probe.py(
        "open('big2', 'wb').write(bytes(10 << 20))", limits=limits
    )  # Python ignores SIGXFSZ: the write fails instead
    assert written.exit_code == 1 and b"File too large" in written.stderr
