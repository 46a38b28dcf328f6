"""Path confinement and the file tools: nothing outside the workspace is read or written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ember.agents import AgentProfile, WorkspaceFiles, builtin_tools, confine
from ember.chat import ToolCall
from ember.errors import BadRequest, PayloadTooLarge, PolicyDenied


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    return secret


def test_relative_paths_resolve_inside(workspace: Path) -> None:
    (workspace / "a").mkdir()
    real = workspace.resolve()
    assert confine(workspace, "a/b.txt") == real / "a" / "b.txt"
    assert confine(workspace, "a/../c.txt") == real / "c.txt"
    assert confine(workspace, "") == real
    assert confine(workspace, ".") == real


def test_sandbox_paths_mean_the_workspace(workspace: Path) -> None:
    assert confine(workspace, "/workspace/x.txt") == workspace.resolve() / "x.txt"
    assert confine(workspace, "/workspace") == workspace.resolve()
    assert confine(workspace, str(workspace / "y")) == workspace.resolve() / "y"


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "a/../../secret.txt",
        "/etc/passwd",
        "/workspace/../etc/passwd",
        "/workspacex/a",
        "nul\x00byte",
    ],
)
def test_escapes_are_denied(workspace: Path, outside: Path, path: str) -> None:
    with pytest.raises(PolicyDenied) as caught:
        confine(workspace, path)
    assert caught.value.code == "policy_denied" and caught.value.extra == {"path": path}


def test_an_absolute_path_outside_is_denied(workspace: Path, outside: Path) -> None:
    with pytest.raises(PolicyDenied):
        confine(workspace, str(outside))


def test_a_symlink_out_is_denied(workspace: Path, outside: Path) -> None:
    (workspace / "link").symlink_to(outside)
    with pytest.raises(PolicyDenied):
        confine(workspace, "link")


def test_a_symlinked_parent_directory_out_is_denied(workspace: Path, outside: Path) -> None:
    (workspace / "dir").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(PolicyDenied):
        confine(workspace, "dir/secret.txt")
    with pytest.raises(PolicyDenied):
        confine(workspace, "dir/new-file.txt")


def test_a_symlink_that_stays_inside_is_followed(workspace: Path) -> None:
    (workspace / "real.txt").write_text("hi")
    (workspace / "alias.txt").symlink_to("real.txt")
    assert confine(workspace, "alias.txt") == workspace.resolve() / "real.txt"


def test_read_write_and_list(workspace: Path) -> None:
    files = WorkspaceFiles(workspace, max_read_bytes=5, max_write_bytes=20)
    assert files.write("notes/a.txt", "hello world") == {
        "path": "notes/a.txt",
        "bytes": 11,
        "appended": False,
    }
    files.write("notes/a.txt", "!", append=True)
    read = files.read("notes/a.txt")
    assert read == {
        "path": "notes/a.txt",
        "size": 12,
        "offset": 0,
        "content": "hello",
        "truncated": True,
    }
    assert files.read("notes/a.txt", offset=6)["content"] == "world"
    (workspace / "notes" / "link").symlink_to("/etc")
    listing = files.list(".", recursive=True)
    assert listing["entries"] == [
        {"path": "notes", "type": "dir"},
        {"path": "notes/a.txt", "type": "file", "size": 12},
        {"path": "notes/link", "type": "symlink"},
    ]
    with pytest.raises(PayloadTooLarge):
        files.write("big.txt", "x" * 21)
    with pytest.raises(BadRequest):
        files.read("missing.txt")


def test_a_fifo_is_refused_not_waited_on(workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    files = WorkspaceFiles(workspace)
    with pytest.raises(PolicyDenied, match="not a regular file"):
        files.read("pipe")
    with pytest.raises(PolicyDenied, match="not a regular file"):
        files.write("pipe", "x")


async def test_the_model_sees_denials_as_tool_errors(workspace: Path, outside: Path) -> None:
    (workspace / "dir").symlink_to(outside.parent, target_is_directory=True)
    profile = AgentProfile(model="m", tools=("read_file", "write_file", "list_files"))
    tools = builtin_tools(profile, workspace)
    for name, arguments in [
        ("read_file", {"path": "../secret.txt"}),
        ("read_file", {"path": str(outside)}),
        ("read_file", {"path": "dir/secret.txt"}),
        ("write_file", {"path": "dir/planted.txt", "content": "x"}),
        ("list_files", {"path": "dir"}),
    ]:
        result = await tools.call(ToolCall.of("c", name, arguments))
        assert result.code == "policy_denied", (name, arguments)
        assert "outside the workspace" in json.loads(result.content)["error"]["message"]
    assert not (outside.parent / "planted.txt").exists()
    assert outside.read_text() == "top secret"
