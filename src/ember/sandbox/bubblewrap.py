"""The bubblewrap runner: :class:`BubblewrapSandbox`, the one :class:`Sandbox` adapter today.

Each command runs as::

    [sh -c JOIN cgroup.procs... --]  bwrap --args FD --seccomp FD --json-status-fd FD --
        /bin/sh -c INIT ember-init ARGV...

- ``sh`` (only when cgroups are usable) writes its own pid into the command's fresh cgroups
  and execs bubblewrap, so every process of the sandbox starts inside them;
- bubblewrap reads its options from a memfd (``--args``: the environment given to the
  command never shows on the host's process list), makes new user (nested user namespaces
  disabled), pid, net, ipc, uts, cgroup and mount namespaces, builds the root of
  :mod:`ember.sandbox.rootfs`, drops every capability, sets no-new-privileges, loads the
  filter of :mod:`ember.sandbox.seccomp`, and (``--as-pid-1``) execs the namespace's init:
  ``sh`` running :func:`~ember.sandbox.limits.init_script`, which sets the rlimits and starts
  the command as its child. bubblewrap's own environment is a bare
  ``PATH``; the command's is ``--clearenv`` plus ``PATH``, ``HOME``, ``LANG`` and the
  caller's ``env``.

bubblewrap errors before the command ran (``--json-status-fd`` reports no exit code) become
:class:`~ember.errors.SandboxFailed`; a missing prerequisite is
:class:`~ember.errors.SandboxUnavailable`. Ending the tree: see :mod:`ember.sandbox._process`.

Spans: a one-shot run is ``sandbox run``, a session's command ``sandbox command``
(:mod:`ember.sandbox._spans`), with ``ember.sandbox.tier: bubblewrap``. Metrics (``tier:
bubblewrap``): a one-shot run's sandbox counts as started once its process is, a session's
as :mod:`ember.sandbox.session` says; a run or session command a limit ended counts as killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.trace import NoOpTracer, Tracer

from ember.errors import BadRequest, SandboxFailed, SandboxUnavailable
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.sandbox._pipes import StatusPipe
from ember.sandbox._process import (
    Launch,
    bwrap_message,
    end,
    finished,
    shielded,
    stderr_text,
    supervise,
)
from ember.sandbox._spans import command_attributes, record_kill, record_result, record_start
from ember.sandbox.binds import check_read_only_paths, check_syntax, ember_homes
from ember.sandbox.cgroups import Cgroups, RunCgroup
from ember.sandbox.limits import check_argv, check_limits, init_script, rlimits
from ember.sandbox.prerequisites import (
    SUPPORT_PREFIX,
    bwrap_version,
    check_user_namespaces,
    remove_stale_support,
)
from ember.sandbox.protocol import (
    CommandResult,
    SandboxCapabilities,
    SandboxCommand,
    SandboxLimits,
)
from ember.sandbox.rootfs import HOME, RootFs, nul_joined
from ember.sandbox.seccomp import write_filter
from ember.sandbox.session import (
    EXECUTOR_PYTHON,
    MIN_OPEN_FILES,
    ExecutorSession,
    executor_argv,
)

__all__ = ["BASE_ENV", "BubblewrapSandbox", "Request", "check_request"]

OUTER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
"""bubblewrap's own environment: nothing of ember's."""
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "LANG": "C.UTF-8"}
"""What every sandboxed command's environment starts from (the caller's ``env`` wins)."""
JOIN = 'for f do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@"'
INIT_SHELL = "/bin/sh"
"""The sandbox's pid 1 (``bwrap --as-pid-1``) runs :func:`~ember.sandbox.limits.init_script`
in this shell. Unlike bubblewrap 0.8's own init, it carries ``--die-with-parent``'s
parent-death signal: when bubblewrap's monitor dies (with ember, or with the launcher), the
init dies, and the kernel ends every other process of the namespace."""
LAUNCHER = Path(__file__).with_name("_launcher.py")
TRIAL_TIMEOUT_S = 30.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ALWAYS = frozenset({"wall_s", "cpu_s", "file_size_bytes", "open_files", "output_bytes"})


@dataclass(frozen=True)
class Request:
    """A checked request: ``argv``, the resolved ``workspace``, the whole environment of the
    command (:data:`BASE_ENV` and the caller's), the read-only paths."""

    argv: tuple[str, ...]
    workspace: Path
    env: dict[str, str]
    read_only: tuple[str, ...] = ()


def check_request(
    argv: Sequence[str] | None,
    workspace: Path,
    limits: SandboxLimits,
    env: Mapping[str, str] | None,
    read_only_paths: Sequence[str] = (),
) -> Request:
    """A sandbox request checked as :meth:`~ember.sandbox.protocol.Sandbox.run` documents,
    for every runner (``argv`` ``None``: a session's, whose commands come later); the
    read-only paths are checked for syntax only (the host's checks are the runner's).

    :raises BadRequest: see :meth:`~ember.sandbox.protocol.Sandbox.run`.
    """
    check_limits(limits)
    if isinstance(read_only_paths, str | bytes):
        raise BadRequest("read_only_paths must be a list of paths")
    read_only = check_syntax(read_only_paths)
    items = () if argv is None else check_argv(argv)
    try:
        resolved = Path(workspace).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise BadRequest(f"workspace {workspace} does not exist") from exc
    if not resolved.is_dir() or resolved == Path("/"):
        raise BadRequest(f"workspace {workspace} is not a directory ember may bind")
    merged = dict(BASE_ENV)
    for name, value in (env or {}).items():
        if not (isinstance(name, str) and _ENV_NAME.match(name)):
            raise BadRequest(f"environment variable name {name!r} is not valid")
        if not isinstance(value, str) or "\0" in value:
            raise BadRequest(f"environment variable {name} must be a string without NUL")
        merged[name] = value
    return Request(items, resolved, merged, read_only)


class BubblewrapSandbox:
    """Runs commands under bubblewrap, seccomp, rlimits and (where writable) cgroup v1 limits.

    ``bwrap``: the bubblewrap executable (default: ``bwrap`` on ``PATH``); ``use_cgroups``:
    make a cgroup per command where the machine allows (``False``: rlimits only);
    ``hostname``: the sandbox's; ``state_dir``: where its private support directory (the
    generated ``/etc`` files, the compiled filter, launch specs) is made, removed when this
    object is collected; ``protected_paths``: paths no command's ``read_only_paths`` may be,
    lie under or contain, besides those :mod:`ember.sandbox.binds` always protects (ember's
    home as ``$EMBER_HOME`` and ``~/.ember``, the support directory, the workspace);
    ``tracer`` makes the spans of runs and session commands, ``metrics`` records their starts
    and kills. Nothing is touched until :meth:`check` (or the first command).
    """

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        use_cgroups: bool = True,
        hostname: str = "sandbox",
        state_dir: Path | None = None,
        protected_paths: Sequence[Path] = (),
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._bwrap_name = bwrap or "bwrap"
        self._tracer = tracer or NoOpTracer()
        self._metrics: Metrics = metrics or NoMetrics()
        self._use_cgroups = use_cgroups
        self._hostname = hostname
        self._state_dir = state_dir
        self._protected = tuple(Path(path) for path in protected_paths)
        self._lock = threading.Lock()
        self._capabilities: SandboxCapabilities | None = None
        self._bwrap = ""
        self._support = Path()
        self._root: RootFs | None = None
        self._cgroups: Cgroups | None = None

    # -- readiness ----------------------------------------------------------------------

    def check(self) -> None:
        with self._lock:
            if self._capabilities is not None and not self._intact():
                self._capabilities = None  # a temp cleaner took the support files: redo them
            if self._capabilities is None:
                self._capabilities = self._prepare()

    def _intact(self) -> bool:
        support = self._support
        needed = [support / "seccomp.bpf", support / "commands", support / "trial"]
        return self._root is not None and self._root.intact() and all(map(Path.exists, needed))

    def capabilities(self) -> SandboxCapabilities:
        self.check()
        assert self._capabilities is not None
        return self._capabilities

    def _prepare(self) -> SandboxCapabilities:
        bwrap = shutil.which(self._bwrap_name)
        if bwrap is None:
            raise SandboxUnavailable(
                f"bubblewrap ({self._bwrap_name}) is not on PATH: install the bubblewrap package"
            )
        if not os.access(INIT_SHELL, os.X_OK):
            raise SandboxUnavailable(f"{INIT_SHELL} is missing")
        check_user_namespaces()
        version = bwrap_version(bwrap)
        remove_stale_support(Path(self._state_dir or tempfile.gettempdir()))
        prefix = f"{SUPPORT_PREFIX}{os.getpid()}-"
        support = Path(tempfile.mkdtemp(prefix=prefix, dir=self._state_dir))
        try:
            (support / "commands").mkdir(mode=0o700)
            (support / "trial").mkdir(mode=0o700)
            write_filter(support / "seccomp.bpf")
            self._bwrap, self._support = bwrap, support
            self._root = RootFs.build(support, hostname=self._hostname)
            notes: list[str] = []
            self._cgroups = None
            if self._use_cgroups:
                cgroups = Cgroups()
                notes += cgroups.notes
                if cgroups.controllers:
                    cgroups.sweep()
                    self._cgroups = cgroups
            else:
                notes.append("cgroups turned off (use_cgroups=False): rlimits only")
            failure = self._trial()
            if failure is not None and self._cgroups is not None:
                self._cgroups = None
                if self._trial() is None:
                    notes.append(f"joining a cgroup failed ({failure}): rlimits only")
                    failure = None
            if failure is not None:
                raise SandboxUnavailable(f"bubblewrap cannot run a trivial command: {failure}")
        except BaseException:
            shutil.rmtree(support, ignore_errors=True)
            raise
        weakref.finalize(self, shutil.rmtree, str(support), True)
        return self._describe(version, notes)

    def _describe(self, version: str, notes: list[str]) -> SandboxCapabilities:
        controllers = self._cgroups.controllers if self._cgroups else frozenset()
        enforced = set(_ALWAYS) | {"seccomp", "network"}
        if "memory" in controllers:
            enforced.add("memory_bytes")
        else:
            notes.append("memory_bytes is an address-space rlimit per process, not a total")
        if "pids" in controllers:
            enforced.add("processes")
        elif os.geteuid() == 0:
            notes.append("processes is not enforced: uid 0 is exempt from RLIMIT_NPROC")
        else:
            enforced.add("processes")
        if "cpu" in controllers:
            enforced.add("cpus")
        else:
            notes.append("cpus is not enforced without the cpu cgroup")
        return SandboxCapabilities(f"bubblewrap {version}", frozenset(enforced), tuple(notes))

    def _trial(self) -> str | None:
        """Run ``true`` the way every command runs; why it failed, or ``None``."""
        request = Request(("true",), self._support / "trial", dict(BASE_ENV))
        limits = SandboxLimits(wall_s=TRIAL_TIMEOUT_S)
        try:
            launch = self._launch(request, limits)
        except SandboxFailed as exc:
            return exc.detail
        try:
            try:
                done = subprocess.run(
                    launch.argv,
                    pass_fds=launch.pass_fds,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env=OUTER_ENV,
                    timeout=TRIAL_TIMEOUT_S,
                    check=False,
                )
            finally:
                launch.close_child_fds()
            launch.status.poll()
            if launch.status.exit_code == 0:
                return None
            detail = bwrap_message(done.stderr) or stderr_text(done.stderr)
            return detail or f"exit status {done.returncode}"
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        finally:
            if launch.cgroup is not None:
                launch.cgroup.empty_sync()
                launch.cgroup.remove()
            launch.close()

    # -- commands -----------------------------------------------------------------------

    def _request(
        self,
        argv: Sequence[str] | None,
        workspace: Path,
        limits: SandboxLimits,
        env: Mapping[str, str] | None,
        read_only_paths: Sequence[str] = (),
    ) -> Request:
        return check_request(argv, workspace, limits, env, read_only_paths)

    def _checked_binds(self, request: Request) -> None:
        """Check ``request``'s read-only paths against this host (after :meth:`check`, so
        the support directory is known)."""
        if request.read_only:
            protected = [*ember_homes(), *self._protected, self._support, request.workspace]
            check_read_only_paths(request.read_only, protected)

    def _options(self, request: Request, limits: SandboxLimits) -> list[str]:
        """bubblewrap's options for ``request``, but for the descriptors it is given."""
        assert self._root is not None
        opts = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
        opts += ["--as-pid-1", "--new-session", "--cap-drop", "ALL", "--clearenv"]
        for name, value in request.env.items():
            opts += ["--setenv", name, value]
        opts += self._root.options(
            request.workspace,
            tmp_bytes=limits.memory_bytes // 2,
            hostname=self._hostname,
            read_only=request.read_only,
        )
        return opts

    @property
    def _memory_cgroup(self) -> bool:
        return self._cgroups is not None and "memory" in self._cgroups.controllers

    def _inner(self, request: Request, limits: SandboxLimits) -> list[str]:
        """What bubblewrap execs: the namespace's init, which sets the rlimits and starts
        the command."""
        script = init_script(limits, address_space=not self._memory_cgroup)
        return [INIT_SHELL, "-c", script, "ember-init", *request.argv]

    def _new_cgroup(self, limits: SandboxLimits) -> RunCgroup | None:
        if self._cgroups is None:
            return None
        try:
            return self._cgroups.create(limits)
        except OSError as exc:
            raise SandboxFailed(f"could not create the command's cgroup: {exc}") from exc

    def _launch(
        self, request: Request, limits: SandboxLimits, inner: Sequence[str] | None = None
    ) -> Launch:
        """How to start ``request`` (``inner``: what bubblewrap execs instead of the init of
        :meth:`_inner`; a session's executor)."""
        cgroup = self._new_cgroup(limits)
        status = StatusPipe()
        args_fd = os.memfd_create("ember-sandbox-args", os.MFD_CLOEXEC)
        os.write(args_fd, nul_joined(self._options(request, limits)))
        os.lseek(args_fd, 0, os.SEEK_SET)
        seccomp_fd = os.open(self._support / "seccomp.bpf", os.O_RDONLY | os.O_CLOEXEC)
        argv = [
            self._bwrap,
            "--args",
            str(args_fd),
            "--seccomp",
            str(seccomp_fd),
            "--json-status-fd",
            str(status.write_fd),
            "--",
            *(self._inner(request, limits) if inner is None else inner),
        ]
        if cgroup is not None:
            argv = ["/bin/sh", "-c", JOIN, "ember-sandbox", *cgroup.procs_files, "--", *argv]
        fds = (args_fd, seccomp_fd, status.write_fd)
        return Launch(argv, fds, status, cgroup, [args_fd, seccomp_fd])

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
        attributes = command_attributes("bubblewrap", limits.wall_s)
        with span(self._tracer, "sandbox run", attributes=attributes) as current:
            result = await self._run(argv, workspace, limits, stdin, env, read_only_paths)
            record_result(current, result)
            record_kill(self._metrics, "bubblewrap", result)
            return result

    async def _run(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        stdin: bytes | None,
        env: Mapping[str, str] | None,
        read_only_paths: Sequence[str],
    ) -> CommandResult:
        request = self._request(argv, workspace, limits, env, read_only_paths)
        if self._capabilities is None or not self._intact():
            await asyncio.to_thread(self.check)
        self._checked_binds(request)
        launch = self._launch(request, limits)
        try:
            started = time.monotonic()
            creating = asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=launch.pass_fds,
                env=OUTER_ENV,
            )
            try:
                proc, cancelled = await finished(creating)
            except OSError as exc:
                raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
            finally:
                launch.close_child_fds()
            record_start(self._metrics, "bubblewrap")
            if cancelled:  # started all the same: end it before the cancel goes on
                await shielded(end(proc, launch))
                raise asyncio.CancelledError
            return await supervise(proc, launch, limits, stdin, started)
        finally:
            if launch.cgroup is not None:
                launch.cgroup.empty_sync()
                launch.cgroup.remove()
            launch.close()

    @contextlib.asynccontextmanager
    async def session(
        self,
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> AsyncIterator[ExecutorSession]:
        """A :class:`~ember.sandbox.session.ExecutorSession`: one sandbox built as a
        one-shot run's, whose pid 1 is the session's executor (:mod:`ember.sandbox.session`)."""
        request = self._request(None, workspace, limits, env, read_only_paths)
        if limits.open_files < MIN_OPEN_FILES:
            raise BadRequest(f"a sandbox session needs open_files >= {MIN_OPEN_FILES}")
        # the executor's server holds the rlimits too: one more process than the command's
        walls = dataclasses.replace(limits, processes=limits.processes + 1)

        async def launch() -> Launch:
            if self._capabilities is None or not self._intact():
                await asyncio.to_thread(self.check)
            if not os.access(EXECUTOR_PYTHON, os.X_OK):
                raise SandboxUnavailable(f"sandbox sessions need {EXECUTOR_PYTHON}")
            self._checked_binds(request)
            values = rlimits(walls, address_space=not self._memory_cgroup)
            return self._launch(request, walls, executor_argv(values))

        session = ExecutorSession(
            launch, limits, OUTER_ENV, tracer=self._tracer, tier="bubblewrap", metrics=self._metrics
        )
        try:
            await session.start()
            yield session
        finally:
            await shielded(session.close())

    def command(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> SandboxCommand:
        request = self._request(argv, workspace, limits, env, read_only_paths)
        self.check()
        self._checked_binds(request)
        cgroup = self._new_cgroup(limits)
        spec = {
            "bwrap": self._bwrap,
            "args": self._options(request, limits),
            "seccomp": str(self._support / "seccomp.bpf"),
            "argv": self._inner(request, limits),
            "cgroups": [str(path) for path in cgroup.dirs.values()] if cgroup else [],
            "join": JOIN,
            "wall_s": limits.wall_s,
            "env": OUTER_ENV,
        }
        path = self._support / "commands" / f"{uuid.uuid4().hex}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(spec, out)
        python = sys.executable or shutil.which("python3") or "/usr/bin/python3"
        return SandboxCommand((python, "-I", "-S", str(LAUNCHER), str(path)), dict(OUTER_ENV))
