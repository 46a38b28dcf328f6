"""The sandbox seam: run a command where the kernel, not the command's good will, keeps it in.

A :class:`Sandbox` runs one command per call, in a fresh set of namespaces, with the job's
workspace directory as its only writable place (seen inside as :data:`WORKDIR`), no network,
a minimal environment and hard limits; or, through a :class:`SandboxSession`, many commands
one after another in one such sandbox (an agent run's). The bubblewrap runner
(:mod:`ember.sandbox.bubblewrap`) is the one adapter today; a VM-backed runner may follow.
Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
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
    "SandboxSession",
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


class SandboxSession(Protocol):
    """One sandbox kept for many commands (:meth:`Sandbox.session`), run one at a time.

    The sandbox is built once, with exactly the walls of a one-shot :meth:`Sandbox.run`
    (namespaces, root, seccomp filter, no network, no capabilities, the session's ``env``
    and ``read_only_paths``), and each command is started inside it. What differs from
    one-shot runs:

    - **Per session**: the cgroup limits (``memory_bytes``, ``processes``, ``cpus``) hold for
      the session's processes together (a small executor included), over its life; the
      rlimits (``cpu_s``, ``file_size_bytes``, ``open_files``, ``processes``, and
      ``memory_bytes`` where no memory cgroup holds) are the session's and every command
      starts with them (``cpu_s`` counts per process, from zero); ``env`` and
      ``read_only_paths`` are fixed when the session opens.
    - **Per command**: the wall-clock limit, ``min(timeout_s, limits.wall_s)``, and the
      output caps (``output_bytes`` of stdout and of stderr each).
    - **Shared between its commands**: the workspace (as for one-shot runs), the private
      ``/tmp`` and ``/dev/shm`` (files one command leaves there, the next one sees), System V
      IPC objects, and the session's cgroup charges (memory held in ``/tmp`` counts against
      later commands).
    - **Not shared**: processes. When a command ends (it exits, times out, is stopped or
      cancelled) every other process of the session but its executor is killed, whatever
      session or process group it made: a daemon a command leaves behind does not survive
      its command, and no command can see or signal another's processes.
    """

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Run ``argv`` in the session, as :meth:`Sandbox.run` runs it in a fresh sandbox.

        The result means what one-shot results mean (exit code, 127 for a command not
        found, ``signal``, ``killed`` incl. ``"timeout"`` at ``min(timeout_s,
        limits.wall_s)``, ``"memory"``, ``"cpu"``, ``"file_size"``, capped output and
        ``*_truncated``, ``duration_s``). Commands of one session run one at a time: a call
        made while another runs waits for it (its wall clock starts when it starts).
        Cancelling the awaiting task kills the command's whole tree before the
        ``CancelledError`` propagates; where that cannot be confirmed, the whole session is
        killed (and started afresh by the next call).

        A session whose sandbox died (its executor was killed by the OOM killer, say) is
        started afresh by the next call: a new sandbox, an empty ``/tmp``, the same
        workspace. A command during which it died reads ``killed="memory"`` when the memory
        cgroup saw an OOM kill, and raises :class:`~ember.errors.SandboxFailed` otherwise.

        :raises BadRequest: ``argv`` is empty or holds a NUL byte, ``timeout_s`` is not
            positive.
        :raises SandboxFailed: the session is closed, its sandbox could not be (re)started
            or stopped answering.
        :raises SandboxUnavailable: as :meth:`Sandbox.check`, when it is (re)started.
        """
        ...


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

    def session(
        self,
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> AbstractAsyncContextManager[SandboxSession]:
        """A :class:`SandboxSession` over ``workspace``: entering starts its sandbox (so set-up
        errors surface there), leaving kills every process of it (nothing of the session
        outlives the ``async with``, cancelled or not) and removes its cgroup.

        :raises SandboxUnavailable: as :meth:`check` (on entering).
        :raises SandboxFailed: the sandbox could not be set up (on entering).
        :raises BadRequest: as :meth:`run`, for ``workspace``, ``limits``, ``env`` and
            ``read_only_paths``, or ``limits`` a runner's session cannot hold (bubblewrap:
            ``open_files`` under 16) (on entering).
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
