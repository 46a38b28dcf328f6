"""Agents: a chat loop with typed tools, a policy and limits (see ``docs/agents.md``).

Below the Ray line: nothing here imports Ray. The loop (:class:`AgentLoop`) drives the
router's chat; tools (:class:`Tool`, :class:`ToolRegistry`) are checked before they run; the
profile (:class:`AgentProfile`) says what a run may do and :func:`narrow` lets a job only
narrow it. MCP servers (:mod:`ember.agents.mcp`, imported on its own: it loads the ``mcp``
SDK) are :class:`ToolSource` objects whose tools are :class:`SchemaTool` objects.
"""

from ember.agents.egress import HostRule, Resolver, is_public, pin_address, system_resolver
from ember.agents.fetch import Fetcher, FetchResult, fetch_tool
from ember.agents.files import WorkspaceFiles, file_tools
from ember.agents.loop import AgentLoop, NullEvents
from ember.agents.memory_tool import ServiceMemorySearch, memory_tool
from ember.agents.paths import confine
from ember.agents.policy import (
    AgentLimits,
    AgentProfile,
    Isolation,
    LimitOverrides,
    McpServer,
    ProfileOverrides,
    SandboxOverrides,
    SandboxSettings,
    narrow,
)
from ember.agents.protocol import ChatFn, EventSink, MemoryHit, MemorySearch, ToolSource
from ember.agents.shell import SandboxRunner, shell_tools
from ember.agents.toolbox import BUILTIN_TOOLS, builtin_tools
from ember.agents.tools import (
    AnyTool,
    InvalidArguments,
    SchemaTool,
    Tool,
    ToolArgs,
    ToolErrorCode,
    ToolFailure,
    ToolRegistry,
    ToolResult,
)
from ember.agents.transcript import Limit, RunStatus, Step, Transcript

__all__ = [
    "BUILTIN_TOOLS",
    "AgentLimits",
    "AgentLoop",
    "AgentProfile",
    "AnyTool",
    "ChatFn",
    "EventSink",
    "FetchResult",
    "Fetcher",
    "HostRule",
    "InvalidArguments",
    "Isolation",
    "Limit",
    "LimitOverrides",
    "McpServer",
    "MemoryHit",
    "MemorySearch",
    "NullEvents",
    "ProfileOverrides",
    "Resolver",
    "RunStatus",
    "SandboxOverrides",
    "SandboxRunner",
    "SandboxSettings",
    "SchemaTool",
    "ServiceMemorySearch",
    "Step",
    "Tool",
    "ToolArgs",
    "ToolErrorCode",
    "ToolFailure",
    "ToolRegistry",
    "ToolResult",
    "ToolSource",
    "Transcript",
    "WorkspaceFiles",
    "builtin_tools",
    "confine",
    "fetch_tool",
    "file_tools",
    "is_public",
    "memory_tool",
    "narrow",
    "pin_address",
    "shell_tools",
    "system_resolver",
]
