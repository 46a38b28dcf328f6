"""The sandbox seam: run a command where the kernel, not the command's good will, keeps it in.

A :class:`Sandbox` runs one command per call, in a fresh set of namespaces, with the job's
workspace directory as its only writable place (seen inside as :data:`WORKDIR`), no network,
a minimal environment and hard limits. The bubblewrap runner (:mod:`ember.sandbox.bubblewrap`)
is the one adapter today; a VM-backed runner may follow. Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "WORKDIR",
    "CommandResult",
    "KillReason",
    "Sandbox",
    "SandboxCapabilities",
    "SandboxCommand",
    "SandboxLimits",
]

WORKDIR = "/workspace"
"""Where the job's workspace directory appears inside every sandbox; the working directory."""

KillReason = Literal["timeout", "memory", "cpu", "file_size"]
"""Why a command was ended early: its ``wall_s`` ran out (the runner killed the whole tree),
the cgroup's memory limit was hit (the kernel's OOM killer), its ``cpu_s`` ran out
(``SIGXCPU``), or it wrote past ``file_size_bytes`` (``SIGXFSZ``)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits on one sandboxed command and everything it starts.

    ``wall_s`` is enforced by the runner (the whole process tree is killed); the others by
    the kernel: ``cpu_s`` (CPU seconds per process), ``file_size_bytes`` (largest file a
    process may write) and ``open_files`` are rlimits; ``memory_bytes`` (all processes
    together, ``/tmp`` included), ``processes`` (processes and threads together) and ``cpus``
    (CPU bandwidth, in cores) are cgroup limits where the machine allows them, and fall back to
    rlimits per process where it does not (:meth:`Sandbox.capabilities` says which hold).
    ``output_bytes`` caps what is kept of stdout and of stderr each (the rest is drained and
    counted, never buffered). A runner refuses limits that are not positive and finite
    (``BadRequest``).
    """

    wall_s: float = 60.0
    cpu_s: int = 60
    memory_bytes: int = 512 * 1024 * 1024
    file_size_bytes: int = 256 * 1024 * 1024
    open_files: int = 256
    processes: int = 128
    output_bytes: int = 1024 * 1024
    cpus: float = 1.0


@dataclass(frozen=True)
class CommandResult:
    """How a sandboxed command ended.

    ``exit_code`` is the command's status (``None`` when it was killed by a signal, then
    ``signal`` names it; a command that exits with ``128 + N`` itself reads the same, as in a
    shell). ``killed`` says why the runner or kernel ended it early (:data:`KillReason`), or is
    ``None``. ``stdout``/``stderr`` hold at most ``output_bytes`` each; ``*_truncated`` says
    more came (and was drained, not kept).
    """

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    signal: int | None = None
    killed: KillReason | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


@dataclass(frozen=True)
class SandboxCommand:
    """What to exec to start a long-lived command (an MCP stdio server) inside the walls.

    ``argv[0]`` is an absolute path; ``env`` is the environment of that launcher process
    only: the sandboxed command sees just the environment given to :meth:`Sandbox.command`
    (plus the minimal ``PATH``, ``HOME`` and ``LANG``), whatever is merged into ``env`` by the
    spawner. It fits the ``mcp`` SDK as
    ``StdioServerParameters(command=c.argv[0], args=list(c.argv[1:]), env=dict(c.env))``.

    The launcher's stdin, stdout and stderr are the command's. The command and everything it
    starts end when the launcher gets ``SIGTERM``, ``SIGINT`` or ``SIGHUP`` (it kills the
    whole tree, then exits), when it is killed outright (the kernel kills the tree), when the
    command exits (whatever it started dies with it) or when ``wall_s`` runs out.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxCapabilities:
    """What a sandbox enforces on this machine, as found by :meth:`Sandbox.check`.

    ``runner`` names the mechanism and its version; ``enforced`` the :class:`SandboxLimits`
    fields (and ``"seccomp"``, ``"network"``) that hold as documented; ``notes`` say in words
    what is weaker here than documented and why (no writable cgroup controller, say).
    """

    runner: str
    enforced: frozenset[str]
    notes: tuple[str, ...] = ()


class Sandbox(Protocol):
    """Runs commands inside kernel-enforced walls.

    Every command gets: new user, pid, net, ipc, uts and mount namespaces; read-only system
    directories; ``workspace`` bound read-write at :data:`WORKDIR` (its working directory) and
    nothing else writable but a private ``/tmp``; the caller's ``read_only_paths`` (absolute,
    canonical host paths, each bound read-only at the same path, checked by
    :mod:`ember.sandbox.binds`) and nothing else of the host's files beyond the system
    directories; nothing of ember's home, database, tokens,
    model files or environment visible; only ``env`` (plus a minimal ``PATH``, ``HOME`` and
    ``LANG``) in its environment; all capabilities dropped and no new privileges; a seccomp
    filter; the ``limits``; and an empty network namespace (a private loopback only: nothing
    on the host, loopback included, can be reached). When a command ends, everything it
    started ends with it.
    """

    def check(self) -> None:
        """Return when this sandbox can run here (a real trial run, cached once it passed).

        :raises SandboxUnavailable: a prerequisite is missing; the error names it.
        """
        ...

    def capabilities(self) -> SandboxCapabilities:
        """What this sandbox enforces here (calls :meth:`check` first).

        :raises SandboxUnavailable: as :meth:`check`.
        """
        ...

    async def run(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> CommandResult:
        """Run ``argv`` (``argv[0]`` looked up on the sandbox's ``PATH``) in ``workspace``.

        ``stdin`` is fed to the command, then closed (``None``: an empty stdin). A command that
        fails, is not found (exit code 127), is killed or overruns is a result, never an
        exception. Cancelling the awaiting task kills the whole process tree before the
        ``CancelledError`` propagates; no process of the command outlives this call.
        ``read_only_paths`` are host paths shown to the command read-only, at the same path.

        :raises SandboxUnavailable: as :meth:`check`.
        :raises SandboxFailed: the sandbox could not be set up; the command did not run.
        :raises BadRequest: ``argv`` is empty, ``workspace`` is not a directory, ``env``
            has a name or value that cannot be passed, or a read-only path is refused (not
            absolute and canonical, missing, a protected or system path: see
            :mod:`ember.sandbox.binds`; ``extra["path"]`` names it).
        """
        ...

    def command(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> SandboxCommand:
        """The :class:`SandboxCommand` that runs ``argv`` under the same walls and limits
        (``output_bytes`` aside: its pipes are the caller's) with the same
        ``read_only_paths`` when exec'd; starts nothing.

        :raises SandboxUnavailable: as :meth:`check`.
        :raises BadRequest: as :meth:`run`.
        """
        ...
