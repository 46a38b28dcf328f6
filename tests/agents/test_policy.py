"""Profiles: unknown fields refused, MCP servers checked, and a job may only narrow."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ember.agents import AgentProfile, ProfileOverrides, narrow
from ember.errors import PolicyDenied
from ember.sandbox.protocol import SandboxLimits

PROFILE = AgentProfile.model_validate(
    {
        "name": "researcher",
        "model": "default",
        "tools": ["read_file", "write_file", "fetch_url"],
        "egress_hosts": ["docs.example.com", "*.wiki.example.org", "127.0.0.1:8080"],
        "mcp_servers": [
            {"name": "git", "command": "mcp-git", "args": ["--repo", "."]},
            {"name": "search", "url": "https://docs.example.com/mcp"},
        ],
        "limits": {"max_steps": 10, "max_tokens": 5000, "max_cost_usd": 1.0},
        "sandbox": {"memory_bytes": 256 * 1024 * 1024},
    }
)


def test_defaults_are_closed() -> None:
    profile = AgentProfile(model="default")
    assert profile.tools == () and profile.egress_hosts == () and profile.mcp_servers == ()
    assert profile.isolation == "sandbox"
    assert profile.sandbox.limits() == SandboxLimits()


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "m", "shell": True},
        {"model": "m", "limits": {"max_stepz": 3}},
        {"model": "m", "isolation": "container"},
        {"model": "m", "mcp_servers": [{"name": "x"}]},
        {"model": "m", "mcp_servers": [{"name": "x", "command": "a", "url": "http://a/"}]},
        {"model": "m", "mcp_servers": [{"name": "x", "url": "https://elsewhere.example/"}]},
        {"model": "m", "egress_hosts": ["http://a.example/"]},
        {"model": "m", "tools": ["read_file", "read_file"]},
        {"model": "m", "limits": {"max_steps": 0}},
    ],
    ids=[
        "unknown-field",
        "unknown-limit",
        "isolation",
        "mcp-neither",
        "mcp-both",
        "mcp-host-not-allowed",
        "egress-url",
        "tool-twice",
        "zero-steps",
    ],
)
def test_bad_profiles_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentProfile.model_validate(bad)


def test_vm_is_a_valid_value_the_runner_refuses() -> None:
    assert AgentProfile(model="m", isolation="vm").isolation == "vm"


def test_narrowing_keeps_what_is_asked() -> None:
    overrides = ProfileOverrides.model_validate(
        {
            "tools": ["read_file"],
            "mcp_servers": ["git"],
            "egress_hosts": ["en.wiki.example.org", "127.0.0.1:8080"],
            "limits": {"max_steps": 3, "max_tokens": 100, "max_cost_usd": 0.5},
            "sandbox": {"wall_s": 5},
        }
    )
    narrowed = narrow(PROFILE, overrides)
    assert narrowed.tools == ("read_file",)
    assert [server.name for server in narrowed.mcp_servers] == ["git"]
    assert narrowed.egress_hosts == ("en.wiki.example.org", "127.0.0.1:8080")
    assert (narrowed.limits.max_steps, narrowed.limits.max_tokens) == (3, 100)
    assert narrowed.limits.max_cost_usd == 0.5
    assert narrowed.limits.wall_s == PROFILE.limits.wall_s
    assert narrowed.sandbox.wall_s == 5
    assert narrowed.sandbox.memory_bytes == 256 * 1024 * 1024
    assert narrow(PROFILE, None) is PROFILE
    assert narrow(PROFILE, ProfileOverrides()) is PROFILE


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tools": ["run_command"]}, "tools"),
        ({"mcp_servers": ["shell"]}, "mcp_servers"),
        ({"egress_hosts": ["evil.example"]}, "egress_hosts"),
        ({"egress_hosts": ["wiki.example.org"]}, "egress_hosts"),
        ({"egress_hosts": ["127.0.0.1"]}, "egress_hosts"),
        ({"egress_hosts": ["*.example.com"]}, "egress_hosts"),
        ({"limits": {"max_steps": 11}}, "limits.max_steps"),
        ({"limits": {"max_cost_usd": 2.0}}, "limits.max_cost_usd"),
        ({"sandbox": {"memory_bytes": 512 * 1024 * 1024}}, "sandbox.memory_bytes"),
    ],
    ids=[
        "tool",
        "mcp",
        "host",
        "wildcard-base",
        "any-port",
        "wider-wildcard",
        "steps",
        "cost",
        "memory",
    ],
)
def test_widening_is_denied_naming_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyDenied) as caught:
        narrow(PROFILE, ProfileOverrides.model_validate(overrides))
    assert caught.value.code == "policy_denied" and caught.value.status == 403
    assert caught.value.extra == {"field": field}
    assert f"`{field}`" in caught.value.detail


def test_an_unlimited_limit_can_be_capped_but_overrides_cannot_lift_one() -> None:
    unlimited = AgentProfile(model="m", limits={"max_tokens": None})
    assert narrow(unlimited, ProfileOverrides(limits={"max_tokens": 10})).limits.max_tokens == 10
    with pytest.raises(ValidationError):
        ProfileOverrides.model_validate({"egress_hosts": ["http://a.example/"]})
    with pytest.raises(ValidationError):
        ProfileOverrides.model_validate({"isolation": "vm"})
    with pytest.raises(ValidationError):
        ProfileOverrides.model_validate({"model": "bigger"})
