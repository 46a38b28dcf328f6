"""An agent's profile: what it may call, reach and spend, and how a job narrows it.

A profile is one pydantic model (:class:`AgentProfile`, unknown fields refused): the model
alias, the allowed tools, MCP servers, the egress hosts the fetch tool may reach, the
isolation (``sandbox``: bubblewrap; ``vm``: a throwaway VM per sandbox,
:mod:`ember.vm.sandbox`), the run's limits and the sandbox's limits. A job may pass
:class:`ProfileOverrides`;
:func:`narrow` applies them only where they narrow the profile (fewer tools, servers or hosts,
lower limits) and raises :class:`~ember.errors.PolicyDenied` naming the first field that
would widen it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ember.agents.egress import HostRule
from ember.errors import BadRequest, PolicyDenied, ValidationFailed
from ember.sandbox.binds import check_syntax
from ember.sandbox.protocol import SandboxLimits

__all__ = [
    "AgentLimits",
    "AgentProfile",
    "Isolation",
    "LimitOverrides",
    "McpServer",
    "ProfileOverrides",
    "SandboxOverrides",
    "SandboxSettings",
    "narrow",
]

Isolation = Literal["sandbox", "vm"]

_DEFAULT_SANDBOX = SandboxLimits()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServer(_Strict):
    """A Model Context Protocol server: started by ``command``/``args`` (stdio, inside the
    sandbox, with ``read_only_paths`` shown to it read-only at their own paths; see
    :mod:`ember.sandbox.binds` for which are refused) or reached at ``url`` (Streamable HTTP;
    its host must be among ``egress_hosts``). Its tools are offered as ``<name>__<tool>``."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    command: str | None = Field(default=None, min_length=1)
    args: tuple[str, ...] = ()
    url: str | None = Field(default=None, pattern=r"^https?://")
    read_only_paths: tuple[str, ...] = ()

    @field_validator("read_only_paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return check_syntax(value)
        except BadRequest as exc:
            raise ValueError(exc.detail) from None

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r} needs either `command` or `url`")
        if self.url is not None and (self.args or self.read_only_paths):
            raise ValueError(
                f"MCP server {self.name!r}: `args` and `read_only_paths` go with `command`, "
                "not `url`"
            )
        return self


class AgentLimits(_Strict):
    """The run's limits; ``None`` is no limit of that kind (cost is also bounded by the
    router's budgets, always)."""

    max_steps: int = Field(default=20, ge=1, le=1000)
    """Model calls per run."""
    wall_s: float = Field(default=600.0, gt=0)
    """Wall-clock seconds for the whole run, tools included."""
    max_tokens: int | None = Field(default=200_000, ge=1)
    """Prompt plus completion tokens over all model calls."""
    max_cost_usd: float | None = Field(default=None, ge=0)
    """USD over all model calls, at the router's prices."""
    max_read_bytes: int = Field(default=256 * 1024, ge=1)
    max_write_bytes: int = Field(default=1024 * 1024, ge=1)
    max_fetch_bytes: int = Field(default=512 * 1024, ge=1)
    fetch_timeout_s: float = Field(default=20.0, gt=0)
    max_result_chars: int = Field(default=20_000, ge=100)
    """What the model is shown of one tool result."""
    mcp_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds an MCP server has for each request: starting and ``initialize``, each page
    of its tool list, each tool call."""


class SandboxSettings(_Strict):
    """:class:`~ember.sandbox.protocol.SandboxLimits` for each command the agent runs."""

    wall_s: float = Field(default=_DEFAULT_SANDBOX.wall_s, gt=0)
    cpu_s: int = Field(default=_DEFAULT_SANDBOX.cpu_s, ge=1)
    memory_bytes: int = Field(default=_DEFAULT_SANDBOX.memory_bytes, ge=1)
    file_size_bytes: int = Field(default=_DEFAULT_SANDBOX.file_size_bytes, ge=1)
    open_files: int = Field(default=_DEFAULT_SANDBOX.open_files, ge=1)
    processes: int = Field(default=_DEFAULT_SANDBOX.processes, ge=1)
    output_bytes: int = Field(default=_DEFAULT_SANDBOX.output_bytes, ge=1)
    cpus: float = Field(default=_DEFAULT_SANDBOX.cpus, gt=0)

    def limits(self) -> SandboxLimits:
        return SandboxLimits(**self.model_dump())


class AgentProfile(_Strict):
    """What an agent may do. ``tools`` names the allowed built-in tools (none by default);
    ``mcp_servers`` the MCP servers whose tools (all of them) are allowed too;
    ``egress_hosts`` the hosts the fetch tool and HTTP MCP servers may reach (``host``,
    ``host:port`` or ``*.domain``; only a host named exactly may resolve to a private or
    loopback address)."""

    name: str = "default"
    model: str = Field(min_length=1)
    system_prompt: str | None = None
    tools: tuple[str, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()
    egress_hosts: tuple[str, ...] = ()
    isolation: Isolation = "sandbox"
    limits: AgentLimits = AgentLimits()
    sandbox: SandboxSettings = SandboxSettings()

    @model_validator(mode="after")
    def _consistent(self) -> AgentProfile:
        if len(set(self.tools)) != len(self.tools):
            raise ValueError("`tools` names a tool twice")
        names = [server.name for server in self.mcp_servers]
        if len(set(names)) != len(names):
            raise ValueError("two MCP servers share a name")
        rules = [HostRule.parse(entry) for entry in self.egress_hosts]
        for server in self.mcp_servers:
            if server.url is not None and not any(rule.matches_url(server.url) for rule in rules):
                raise ValueError(
                    f"MCP server {server.name!r}: the host of {server.url!r} is not in "
                    "`egress_hosts`"
                )
        return self


class LimitOverrides(_Strict):
    """Lower values for some of :class:`AgentLimits` (unset: the profile's)."""

    max_steps: int | None = Field(default=None, ge=1)
    wall_s: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, ge=0)
    max_read_bytes: int | None = Field(default=None, ge=1)
    max_write_bytes: int | None = Field(default=None, ge=1)
    max_fetch_bytes: int | None = Field(default=None, ge=1)
    fetch_timeout_s: float | None = Field(default=None, gt=0)
    max_result_chars: int | None = Field(default=None, ge=100)
    mcp_timeout_s: float | None = Field(default=None, gt=0)


class SandboxOverrides(_Strict):
    """Lower values for some of :class:`SandboxSettings` (unset: the profile's)."""

    wall_s: float | None = Field(default=None, gt=0)
    cpu_s: int | None = Field(default=None, ge=1)
    memory_bytes: int | None = Field(default=None, ge=1)
    file_size_bytes: int | None = Field(default=None, ge=1)
    open_files: int | None = Field(default=None, ge=1)
    processes: int | None = Field(default=None, ge=1)
    output_bytes: int | None = Field(default=None, ge=1)
    cpus: float | None = Field(default=None, gt=0)


class ProfileOverrides(_Strict):
    """What a job may change of its profile: only narrower values (see :func:`narrow`).
    ``mcp_servers`` and ``egress_hosts`` are kept by name/entry; an egress host may also be a
    host that one of the profile's ``*.domain`` entries covers."""

    tools: tuple[str, ...] | None = None
    mcp_servers: tuple[str, ...] | None = None
    egress_hosts: tuple[str, ...] | None = None

    @field_validator("egress_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for entry in value or ():
            HostRule.parse(entry)
        return value

    limits: LimitOverrides = LimitOverrides()
    sandbox: SandboxOverrides = SandboxOverrides()


def _widens(field: str, detail: str) -> PolicyDenied:
    return PolicyDenied(f"the override widens `{field}`: {detail}", extra={"field": field})


def _subset(field: str, wanted: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    extra = [item for item in wanted if item not in allowed]
    if extra:
        raise _widens(field, f"{', '.join(map(repr, extra))} not in the profile")
    return tuple(dict.fromkeys(wanted))


def _lower(section: str, base: BaseModel, wanted: BaseModel) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in wanted.model_dump(exclude_none=True).items():
        current = getattr(base, name)
        if current is not None and value > current:
            raise _widens(f"{section}.{name}", f"{value} is above the profile's {current}")
        values[name] = value
    return values


def narrow(profile: AgentProfile, overrides: ProfileOverrides | None) -> AgentProfile:
    """``profile`` with ``overrides`` applied, when every one narrows it.

    :raises PolicyDenied: an override widens the profile: a tool, MCP server or host it does
        not allow, or a limit above its own; ``extra["field"]`` names the field.
    """
    if overrides is None:
        return profile
    changes: dict[str, Any] = {}
    if overrides.tools is not None:
        changes["tools"] = _subset("tools", overrides.tools, profile.tools)
    if overrides.mcp_servers is not None:
        names = tuple(server.name for server in profile.mcp_servers)
        kept = set(_subset("mcp_servers", overrides.mcp_servers, names))
        changes["mcp_servers"] = tuple(s for s in profile.mcp_servers if s.name in kept)
    if overrides.egress_hosts is not None:
        rules = [HostRule.parse(entry) for entry in profile.egress_hosts]
        for entry in overrides.egress_hosts:
            if not any(rule.covers(HostRule.parse(entry)) for rule in rules):
                raise _widens("egress_hosts", f"{entry!r} is not covered by the profile")
        changes["egress_hosts"] = tuple(dict.fromkeys(overrides.egress_hosts))
    limits = _lower("limits", profile.limits, overrides.limits)
    if limits:
        changes["limits"] = profile.limits.model_copy(update=limits)
    sandbox = _lower("sandbox", profile.sandbox, overrides.sandbox)
    if sandbox:
        changes["sandbox"] = profile.sandbox.model_copy(update=sandbox)
    if not changes:
        return profile
    try:
        return AgentProfile.model_validate(profile.model_copy(update=changes).model_dump())
    except ValidationError as exc:
        raise ValidationFailed(f"the narrowed profile is inconsistent: {exc}") from exc
