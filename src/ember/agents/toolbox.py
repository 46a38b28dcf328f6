"""The built-in tools a profile allows, wired for one job's workspace.

:func:`builtin_tools` is what the composition root calls per run: it builds only the tools
the profile names, with the profile's limits, and refuses a profile that names a tool whose
dependency (a sandbox, a memory search) was not given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ember.agents.egress import Resolver, system_resolver
from ember.agents.fetch import Fetcher, fetch_tool
from ember.agents.files import WorkspaceFiles, file_tools
from ember.agents.memory_tool import memory_tool
from ember.agents.policy import AgentProfile
from ember.agents.protocol import MemorySearch
from ember.agents.shell import SandboxRunner, shell_tools
from ember.agents.tools import Tool, ToolRegistry
from ember.errors import ValidationFailed
from ember.sandbox.protocol import Sandbox

__all__ = ["BUILTIN_TOOLS", "builtin_tools"]

BUILTIN_TOOLS = (
    "read_file",
    "write_file",
    "list_files",
    "run_command",
    "run_python",
    "search_memory",
    "fetch_url",
)
"""The names of the built-in tools."""


def builtin_tools(
    profile: AgentProfile,
    workspace: Path,
    *,
    sandbox: Sandbox | None = None,
    memory: MemorySearch | None = None,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    sessions: contextlib.AsyncExitStack | None = None,
) -> ToolRegistry:
    """A registry of the built-in tools ``profile`` allows, over ``workspace``.

    ``sandbox`` runs ``run_command``/``run_python`` (with ``env`` in their environment): in
    one sandbox session for the run, opened by the first command and closed with
    ``sessions`` (see :class:`~ember.agents.shell.SandboxRunner`), or, without ``sessions``,
    one sandbox per command; ``memory`` backs ``search_memory``; ``resolver`` and
    ``transport`` are the fetch tool's (tests inject them).

    :raises ValidationFailed: the profile names a tool that is not built in, or one whose
        dependency is missing.
    """
    wanted = set(profile.tools)
    unknown = sorted(wanted - set(BUILTIN_TOOLS))
    if unknown:
        raise ValidationFailed(f"no built-in tool named {', '.join(unknown)}")
    limits = profile.limits
    tools: list[Tool[Any]] = []
    if wanted & {"read_file", "write_file", "list_files"}:
        files = WorkspaceFiles(workspace, limits.max_read_bytes, limits.max_write_bytes)
        tools += file_tools(files)
    if wanted & {"run_command", "run_python"}:
        if sandbox is None:
            raise ValidationFailed("the profile allows run_command/run_python but no sandbox")
        box = profile.sandbox.limits()
        runner = SandboxRunner(sandbox, workspace, box, env, sessions=sessions)
        tools += shell_tools(runner)
    if "search_memory" in wanted:
        if memory is None:
            raise ValidationFailed("the profile allows search_memory but no memory was given")
        tools.append(memory_tool(memory))
    if "fetch_url" in wanted:
        fetcher = Fetcher(
            profile.egress_hosts,
            resolver=resolver,
            max_bytes=limits.max_fetch_bytes,
            timeout_s=limits.fetch_timeout_s,
            transport=transport,
        )
        tools.append(fetch_tool(fetcher))
    registry = ToolRegistry(tools, max_result_chars=limits.max_result_chars)
    return registry.restricted(profile.tools)
