"""Sandbox sessions: one sandbox for many commands, one spawn per command.

:meth:`~ember.sandbox.bubblewrap.BubblewrapSandbox.session` opens an
:class:`ExecutorSession`, which starts one sandbox exactly as a one-shot command's (the
same bubblewrap options, seccomp filter, cgroup and parent-death chain), but for bubblewrap's
inner command: the executor of :mod:`ember.sandbox._executor` (``/usr/bin/python3 -I -S``,
standard library only) instead of the ``sh`` init. Each :meth:`ExecutorSession.run` sends
the executor one request over its stdin and reads one reply from its stdout
(:mod:`ember.sandbox._frames`: length-prefixed JSON, then the stdin bytes, or the kept
stdout and stderr); the executor starts the command and, when it ends, kills every other
process of the sandbox before it answers.

What ember does around that:

- **Timeouts**: the executor ends a command at its wall-clock limit; ember waits that long
  plus a grace, then kills the whole sandbox (a new one starts on the next run).
- **Cancelling** a run sends the executor a ``stop`` for it and waits for the reply (the
  tree is gone then); without a reply within the grace, ember kills the whole sandbox.
- **A dead executor** (the kernel's OOM killer, say): the run in flight reads
  ``killed="memory"`` when the memory cgroup counted an OOM kill, else raises
  :class:`~ember.errors.SandboxFailed`; the next run starts a new sandbox. A reply that is
  not the protocol is :class:`~ember.errors.SandboxFailed` too, and ends the sandbox.
- **Closing** kills the executor (pid 1: the kernel ends every process of the namespace),
  waits for bubblewrap, empties and removes the cgroup (:func:`~ember.sandbox._process.end`).

Each :meth:`ExecutorSession.run` is one span ``sandbox command`` (:mod:`ember.sandbox._spans`);
each sandbox started (the first and every restart) counts in ``ember_sandbox_starts_total``
with its time to the executor's ``ready`` in ``ember_sandbox_start_seconds``, and each
:meth:`ExecutorSession.run` a limit ended in ``ember_sandbox_kills_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import math
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from opentelemetry.trace import NoOpTracer, Tracer

from ember.errors import BadRequest, EmberError, SandboxFailed, SandboxUnavailable
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.sandbox._frames import Broken, Message, encode, read_message
from ember.sandbox._process import (
    JOIN_FAILED,
    KILL_WAIT_S,
    Launch,
    bwrap_message,
    decode_status,
    end,
    finished,
    shielded,
    stderr_text,
)
from ember.sandbox._spans import command_attributes, record_kill, record_result, record_start
from ember.sandbox.limits import LIMITS_FAILED, check_argv
from ember.sandbox.protocol import CommandResult, KillReason, SandboxLimits

__all__ = ["EXECUTOR_PYTHON", "MIN_OPEN_FILES", "Ender", "ExecutorSession", "executor_argv"]

EXECUTOR_PYTHON = "/usr/bin/python3"
"""The interpreter that runs the executor, inside the sandbox (``/usr`` is bound there)."""
EXECUTOR = Path(__file__).with_name("_executor.py")
MIN_OPEN_FILES = 16
"""The executor's server holds the ``open_files`` rlimit (so that commands inherit it) and
needs about ten descriptors of its own."""
START_TIMEOUT_S = 30.0
REPLY_GRACE_S = KILL_WAIT_S + 5.0
"""How much longer than a command's wall-clock limit ember waits for its reply (the executor
itself may take up to ``KILL_WAIT_S`` to kill and drain) before killing the sandbox."""
STDERR_KEPT = 64 * 1024
Ender = Callable[[asyncio.subprocess.Process, Launch], Awaitable[None]]
"""Kills a launched sandbox (the process and all it started); returns once none is left."""
PIPE_LIMIT = 1 << 20


@functools.cache
def _executor_source() -> str:
    return EXECUTOR.read_text()


def executor_argv(rlimits: Sequence[tuple[str, int, int]]) -> list[str]:
    """What bubblewrap execs as a session's pid 1: the executor, with the rlimits it sets in
    every command (:func:`~ember.sandbox.limits.rlimits`)."""
    config = json.dumps({"rlimits": [list(item) for item in rlimits]})
    return [EXECUTOR_PYTHON, "-I", "-S", "-c", _executor_source(), "ember-session", config]


class _Live:
    """One started sandbox of a session: bubblewrap and its executor, and the tasks that read
    the executor's replies and stderr."""

    def __init__(
        self, proc: asyncio.subprocess.Process, launch: Launch, max_blob: int, ender: Ender
    ) -> None:
        self.proc = proc
        self.launch = launch
        self._ender = ender
        self.replies: asyncio.Queue[Message | Broken | None] = asyncio.Queue()
        self.stderr = bytearray()
        self.reader = asyncio.ensure_future(self._read(max_blob))
        self.errors = asyncio.ensure_future(self._read_stderr())
        self._ending: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self._ending is None and not self.reader.done() and self.proc.returncode is None

    async def _read(self, max_blob: int) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                self.replies.put_nowait(await read_message(self.proc.stdout, max_blob))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.replies.put_nowait(None)  # the executor is gone
        except Broken as exc:
            self.replies.put_nowait(exc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            room = STDERR_KEPT - len(self.stderr)
            if room > 0:
                self.stderr += chunk[:room]

    def send(self, data: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(data)  # buffered whole by the transport: never half a message

    async def reply(self, ident: int | None, timeout_s: float) -> Message | Broken | None:
        """The reply to run ``ident`` (``None``: the executor's first message); ``None`` when
        the executor ended first. Replies to earlier, stopped runs are skipped.

        :raises TimeoutError: nothing within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while True:
                item = await self.replies.get()
                if not isinstance(item, tuple) or item[0].get("id") == ident:
                    return item

    async def kill(self) -> None:
        """End every process of this sandbox and remove its cgroup; idempotent."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        try:
            await self._ender(self.proc, self.launch)
        finally:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait({self.reader, self.errors}), 1.0)
            self.reader.cancel()
            self.errors.cancel()
            self.replies.put_nowait(None)  # wakes a run still waiting: its sandbox is gone
            discard(self.launch)

    async def failure(self, first: Message | Broken | None) -> EmberError:
        """Why the sandbox did not start, once bubblewrap has exited (``first``: what the
        executor said instead of ``ready``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), KILL_WAIT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.errors), 1.0)
        code, stderr = self.proc.returncode, bytes(self.stderr)
        if isinstance(first, tuple) and isinstance(first[0].get("error"), str):
            return SandboxFailed(f"the limits could not be set: {first[0]['error'][:500]}")
        if self.launch.cgroup is not None and code == JOIN_FAILED:
            return SandboxFailed("could not move the session into its cgroup")
        if message := bwrap_message(stderr):
            return SandboxFailed(message)
        if code in (126, 127):  # sh could not exec bubblewrap
            return SandboxUnavailable(f"could not start bubblewrap: {stderr_text(stderr)}")
        why = stderr_text(stderr) or f"exit status {code}"
        return SandboxFailed(f"the sandbox session's executor did not start: {why}")


def discard(launch: Launch) -> None:
    """Empty and remove ``launch``'s cgroup, close its descriptors."""
    if launch.cgroup is not None and not launch.cgroup.removed:
        launch.cgroup.empty_sync()
        launch.cgroup.remove()
    launch.close()


class ExecutorSession:
    """A :class:`~ember.sandbox.protocol.SandboxSession` over the executor (see the module).

    ``launch`` makes a fresh :class:`~ember.sandbox._process.Launch` of the session's sandbox
    (checks done, cgroup made, executor as the inner command), once at the start and again
    for each restart; ``env`` is the launched process's own environment. ``ender`` kills a
    launched sandbox and returns once nothing of it is left (default: bubblewrap's
    :func:`~ember.sandbox._process.end`); ``max_blob`` bounds a reply's stdout or stderr
    (default: ``limits.output_bytes``; larger where a runner asks for more, see
    :meth:`execute`); ``start_timeout_s`` is how long the executor may take to say it is
    ready; ``tracer`` makes each command's span, naming ``tier`` as the sandbox's, and
    ``metrics`` records its starts and kills under ``tier`` (see the module).
    """

    def __init__(
        self,
        launch: Callable[[], Awaitable[Launch]],
        limits: SandboxLimits,
        env: Mapping[str, str],
        *,
        ender: Ender = end,
        max_blob: int | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        tracer: Tracer | None = None,
        tier: str = "bubblewrap",
        metrics: Metrics | None = None,
    ) -> None:
        self._new_launch = launch
        self._metrics: Metrics = metrics or NoMetrics()
        self._tracer = tracer or NoOpTracer()
        self._tier = tier
        self._limits = limits
        self._env = dict(env)
        self._ender = ender
        self._max_blob = max(max_blob or 0, limits.output_bytes)
        self._start_timeout_s = start_timeout_s
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._live: _Live | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the sandbox (entering the context does).

        :raises SandboxUnavailable: as :meth:`~ember.sandbox.protocol.Sandbox.check`.
        :raises SandboxFailed: it could not be set up.
        """
        async with self._lock:
            await self._start()

    async def close(self) -> None:
        """Kill every process of the session and remove its cgroup; idempotent."""
        self._closed = True
        if self._live is not None:
            await self._drop(self._live)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        with span(
            self._tracer, "sandbox command", attributes=command_attributes(self._tier)
        ) as current:
            items = check_argv(argv)
            wall_s = self._limits.wall_s
            if timeout_s is not None:
                number = isinstance(timeout_s, int | float) and not isinstance(timeout_s, bool)
                if not number or not math.isfinite(timeout_s) or timeout_s <= 0:
                    raise BadRequest(f"timeout_s must be a positive number, not {timeout_s!r}")
                wall_s = min(wall_s, float(timeout_s))
            current.set_attribute("ember.sandbox.wall_s", wall_s)
            result = await self._run(items, stdin, wall_s)
            record_result(current, result)
            record_kill(self._metrics, self._tier, result)
            return result

    async def _run(
        self, argv: tuple[str, ...], stdin: bytes | None, wall_s: float
    ) -> CommandResult:
        """:meth:`run` a checked ``argv`` within its span (what a subclass adds to a command
        goes here)."""
        return await self.execute(argv, stdin, wall_s, self._limits.output_bytes)

    async def execute(
        self, argv: tuple[str, ...], stdin: bytes | None, wall_s: float, output_bytes: int
    ) -> CommandResult:
        """:meth:`run` a checked ``argv`` with its wall clock and output cap as given (at
        most the session's ``max_blob``): for a runner's own commands in the session."""
        async with self._lock:
            if self._closed:
                raise SandboxFailed("the sandbox session is closed")
            if self._live is None or not self._live.alive:
                await self._start()
            assert self._live is not None
            cap = min(output_bytes, self._max_blob)
            return await self._command(self._live, argv, stdin, wall_s, cap)

    # -- the sandbox ----------------------------------------------------------------------

    async def _start(self) -> None:
        if self._live is not None:
            await shielded(self._drop(self._live))
        started = time.monotonic()
        launch = await self._new_launch()
        creating = asyncio.create_subprocess_exec(
            *launch.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=launch.pass_fds,
            env=self._env,
            limit=PIPE_LIMIT,
        )
        try:
            proc, cancelled = await finished(creating)
        except OSError as exc:
            discard(launch)
            raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
        finally:
            launch.close_child_fds()
        live = self._live = _Live(proc, launch, self._max_blob, self._ender)
        if cancelled:
            await shielded(self._drop(live))
            raise asyncio.CancelledError
        try:
            first = await live.reply(None, self._start_timeout_s)
            if self._closed:  # closed meanwhile (from another task): nothing may outlive it
                error: EmberError = SandboxFailed("the sandbox session is closed")
            elif isinstance(first, tuple) and first[0].get("ready") == 1:
                record_start(self._metrics, self._tier, time.monotonic() - started)
                return
            else:
                error = await live.failure(first)
        except TimeoutError:
            error = SandboxFailed(
                f"the sandbox session did not start in {self._start_timeout_s:g} s"
            )
        except BaseException:
            await shielded(self._drop(live))
            raise
        await shielded(self._drop(live))
        raise error

    async def _drop(self, live: _Live) -> None:
        """Kill ``live`` (the next run starts a new sandbox)."""
        if self._live is live:
            self._live = None
        await live.kill()

    # -- one command ----------------------------------------------------------------------

    async def _command(
        self,
        live: _Live,
        argv: tuple[str, ...],
        stdin: bytes | None,
        wall_s: float,
        output_bytes: int,
    ) -> CommandResult:
        ident = next(self._ids)
        cgroup = live.launch.cgroup
        ooms = cgroup.oom_kills() if cgroup is not None else 0
        request = {
            "op": "run",
            "id": ident,
            "argv": list(argv),
            "wall_s": wall_s,
            "output_bytes": output_bytes,
            "stdin": stdin is not None,
        }
        started = time.monotonic()
        live.send(encode(request, bytes(stdin or b"")))
        try:
            reply = await live.reply(ident, wall_s + REPLY_GRACE_S)
        except TimeoutError:  # the executor stopped answering: the sandbox goes
            await shielded(self._drop(live))
            duration = time.monotonic() - started
            return CommandResult(None, b"", b"", duration, signal.SIGKILL, "timeout")
        except asyncio.CancelledError:
            await shielded(self._stop(live, ident))
            raise
        duration = time.monotonic() - started
        oom = (cgroup.oom_kills() - ooms) if cgroup is not None else 0
        if not isinstance(reply, tuple):
            stderr = stderr_text(bytes(live.stderr))
            await shielded(self._drop(live))
            if reply is None and oom:
                return CommandResult(None, b"", b"", duration, signal.SIGKILL, "memory")
            why = f"it broke the protocol ({reply})" if reply is not None else "it ended"
            raise SandboxFailed(f"the sandbox session's executor failed: {why}; {stderr}")
        try:
            result = self._result(reply, duration, oom, output_bytes)
        except Broken as exc:
            await shielded(self._drop(live))
            detail = f"the sandbox session's executor broke the protocol: {exc}"
            raise SandboxFailed(detail) from exc
        if reply[0].get("clean") is not True:  # a process it could not kill: start afresh
            await shielded(self._drop(live))
        return result

    async def _stop(self, live: _Live, ident: int) -> None:
        """Stop run ``ident`` and wait until its tree is gone, or kill the whole sandbox."""
        live.send(encode({"op": "stop", "id": ident}))
        try:
            reply = await live.reply(ident, REPLY_GRACE_S)
        except TimeoutError:
            reply = None
        if not isinstance(reply, tuple) or reply[0].get("clean") is not True:
            await self._drop(live)

    def _result(self, reply: Message, duration: float, oom: int, cap: int) -> CommandResult:
        header, blobs = reply
        status = header.get("status")
        out_total, err_total = header.get("stdout_total"), header.get("stderr_total")
        if (
            len(blobs) != 2
            or not (status is None or isinstance(status, int))
            or not isinstance(out_total, int)
            or not isinstance(err_total, int)
            or any(len(blob) > cap for blob in blobs)
        ):
            raise Broken("a malformed reply")
        stdout, stderr = blobs
        if status == 125 and stderr.startswith(LIMITS_FAILED.encode()):
            raise SandboxFailed(f"the limits could not be set: {stderr_text(stderr)}")
        exit_code, signum = decode_status(status)
        killed: KillReason | None = None
        if header.get("timed_out") is True:
            killed = "timeout"
        elif oom:
            killed = "memory"
        elif signum == signal.SIGXCPU:
            killed = "cpu"
        elif signum == signal.SIGXFSZ:
            killed = "file_size"
        return CommandResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=duration,
            signal=signum,
            killed=killed,
            stdout_truncated=out_total > len(stdout),
            stderr_truncated=err_total > len(stderr),
        )
