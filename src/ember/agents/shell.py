"""Tools that run code in the sandbox: ``run_command`` and ``run_python``.

Both go through a :class:`~ember.sandbox.protocol.Sandbox` with the profile's
:class:`~ember.sandbox.protocol.SandboxLimits`; a call may ask for a shorter ``timeout_s``,
never a longer one. A command is an argv list, or a string run as ``["sh", "-c", string]``;
Python runs as ``["python3", "-c", code]``. The result is the exit code, how the command
ended and its stdout and stderr as text, each capped (by ``output_bytes`` in the sandbox,
then at ``max_output_chars`` here). A command that fails is a result, not a tool error.

An agent run's commands share one :class:`~ember.sandbox.protocol.SandboxSession` when the
runner is given an exit stack (``sessions``): the first command opens it, the stack's close
(the end of the run) ends it. Without one, each command is a one-shot sandbox run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ember.agents.tools import Tool, ToolArgs
from ember.sandbox.protocol import (
    WORKDIR,
    CommandResult,
    Sandbox,
    SandboxLimits,
    SandboxSession,
)

__all__ = ["CommandArgs", "PythonArgs", "SandboxRunner", "shell_tools"]

_Argv = Annotated[list[str], Field(min_length=1)]
_Line = Annotated[str, Field(min_length=1)]

MAX_CODE_BYTES = 100_000
"""The longest ``run_python`` program (it travels as one argv string, below Linux's 128 KiB)."""


class CommandArgs(ToolArgs):
    command: _Argv | _Line = Field(
        description="An argv list (run as is) or a shell command line (run with `sh -c`)."
    )
    stdin: str | None = Field(default=None, max_length=1_000_000, description="Text for stdin.")
    timeout_s: float | None = Field(
        default=None, gt=0, description="Stop it after this many seconds (at most the limit)."
    )


class PythonArgs(ToolArgs):
    code: str = Field(min_length=1, max_length=MAX_CODE_BYTES, description="A Python program.")
    timeout_s: float | None = Field(
        default=None, gt=0, description="Stop it after this many seconds (at most the limit)."
    )


def _text(data: bytes, truncated: bool, limit: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit:
        return text[:limit], True
    return text, truncated


@dataclasses.dataclass
class SandboxRunner:
    """Runs argv in ``sandbox`` over ``workspace`` with ``limits``.

    ``sessions``: where the run keeps its sandbox session. Given, the first command opens
    :meth:`~ember.sandbox.protocol.Sandbox.session` (with ``limits`` and ``env``) and enters
    it into this stack, so that it ends, every process of it with it, when the stack closes;
    every command then runs in that one sandbox (files left in ``/tmp`` stay for the next).
    ``None``: each command is a one-shot :meth:`~ember.sandbox.protocol.Sandbox.run`.
    """

    sandbox: Sandbox
    workspace: Path
    limits: SandboxLimits
    env: Mapping[str, str] | None = None
    max_output_chars: int = 8_000
    sessions: contextlib.AsyncExitStack | None = None
    _session: SandboxSession | None = dataclasses.field(default=None, init=False, repr=False)
    _opening: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock, init=False, repr=False)

    async def run(
        self, argv: list[str], stdin: str | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """The command's result as the model sees it.

        :raises BadRequest: ``argv`` is empty (from the sandbox).
        :raises SandboxUnavailable: the sandbox cannot run here.
        :raises SandboxFailed: the sandbox (or the run's session) could not be set up.
        """
        data = stdin.encode() if stdin is not None else None
        if self.sessions is not None:
            session = await self._session_of_run(self.sessions)
            return self._shown(await session.run(argv, stdin=data, timeout_s=timeout_s))
        limits = self.limits
        if timeout_s is not None and timeout_s < limits.wall_s:
            limits = dataclasses.replace(limits, wall_s=timeout_s)
        result = await self.sandbox.run(argv, self.workspace, limits, stdin=data, env=self.env)
        return self._shown(result)

    async def _session_of_run(self, sessions: contextlib.AsyncExitStack) -> SandboxSession:
        async with self._opening:
            if self._session is None:
                opened = self.sandbox.session(self.workspace, self.limits, env=self.env)
                self._session = await sessions.enter_async_context(opened)
            return self._session

    def _shown(self, result: CommandResult) -> dict[str, Any]:
        stdout, out_cut = _text(result.stdout, result.stdout_truncated, self.max_output_chars)
        stderr, err_cut = _text(result.stderr, result.stderr_truncated, self.max_output_chars)
        return {
            "exit_code": result.exit_code,
            "signal": result.signal,
            "killed": result.killed,
            "duration_s": round(result.duration_s, 3),
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": out_cut,
            "stderr_truncated": err_cut,
        }


def shell_tools(runner: SandboxRunner) -> list[Tool[Any]]:
    """``run_command`` and ``run_python`` over ``runner``."""

    async def run_command(args: CommandArgs) -> dict[str, Any]:
        argv = ["sh", "-c", args.command] if isinstance(args.command, str) else args.command
        return await runner.run(argv, args.stdin, args.timeout_s)

    async def run_python(args: PythonArgs) -> dict[str, Any]:
        return await runner.run(["python3", "-c", args.code], None, args.timeout_s)

    return [
        Tool(
            "run_command",
            f"Run a command in an isolated sandbox with no network; the workspace is its "
            f"working directory, {WORKDIR}. Returns the exit code, stdout and stderr.",
            CommandArgs,
            run_command,
        ),
        Tool(
            "run_python",
            f"Run a Python 3 program in the same sandbox (working directory {WORKDIR}); "
            "returns the exit code, stdout and stderr.",
            PythonArgs,
            run_python,
        ),
    ]
