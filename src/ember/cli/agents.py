"""``ember agents``: agent profiles and agent runs on a running ember, over its API.

``create``/``update`` read a profile from a YAML or JSON file (``-``: stdin); ``run`` submits
an ``agent`` job, follows its steps as ``ember jobs watch`` does, prints the answer and, with
``--output DIR``, downloads the files the agent left. The token comes from ``--token`` or
``$EMBER_TOKEN``; errors are ember's codes (``agent_not_found``, ``policy_denied``, ...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from ember.cli.common import (
    ConfigOption,
    TokenOption,
    UrlOption,
    api_client,
    console,
    notes,
    reported,
)
from ember.cli.jobs import watch_job
from ember.cli.jobs_client import JobsClient, json_body
from ember.errors import BadRequest, ValidationFailed

__all__ = ["agents_app", "download_artifacts", "register"]

agents_app = typer.Typer(help="Agent profiles and agent runs (on a running ember).")

NameArgument = Annotated[str, typer.Argument(help="The profile's name.")]
FileArgument = Annotated[
    Path, typer.Argument(help="The profile as YAML or JSON (`-`: stdin).", allow_dash=True)
]


def _profile(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"{path}: {exc.strerror or exc}") from exc
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path}: not YAML or JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValidationFailed(f"{path}: a profile is a mapping, not {type(value).__name__}")
    return value


def _path(name: str) -> str:
    return f"/agents/{quote(name, safe='')}"


@agents_app.command("list")
def list_agents(
    url: UrlOption = None, token: TokenOption = None, config_path: ConfigOption = None
) -> None:
    """The workspace's agent profiles."""
    with api_client(url, token, config_path) as client:
        page = json_body(client.call("GET", "/agents", params={"limit": 1000}))
    table = Table("name", "model", "tools", "isolation", "updated")
    for item in page["items"]:
        profile = item["profile"]
        tools = ", ".join(profile.get("tools") or []) or "-"
        table.add_row(
            item["name"], profile["model"], tools, profile["isolation"], item["updated_at"]
        )
    console.print(table)


@agents_app.command("show")
def show(
    name: NameArgument,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """One profile, as YAML."""
    with api_client(url, token, config_path) as client:
        item = json_body(client.call("GET", _path(name)))
    console.print(yaml.safe_dump(item["profile"], sort_keys=False), end="", highlight=False)


@agents_app.command("create")
def create(
    path: FileArgument,
    name: Annotated[str | None, typer.Option(help="The name (default: the file's `name`).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Store a new profile."""
    with reported():
        body = {**_profile(path), **({"name": name} if name else {})}
    with api_client(url, token, config_path) as client:
        item = json_body(client.call("POST", "/agents", json=body))
    console.print(f"created agent {item['name']}", highlight=False)


@agents_app.command("update")
def update(
    path: FileArgument,
    name: Annotated[str | None, typer.Option(help="The name (default: the file's `name`).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Replace a stored profile with the one in the file."""
    with reported():
        body = _profile(path)
        target = name or body.get("name")
        if not isinstance(target, str):
            raise ValidationFailed("the profile has no `name`: pass --name")
    with api_client(url, token, config_path) as client:
        item = json_body(client.call("PUT", _path(target), json={**body, "name": target}))
    console.print(f"updated agent {item['name']}", highlight=False)


@agents_app.command("delete")
def delete(
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Delete a profile (its past runs keep their transcripts)."""
    if not yes and not typer.confirm(f"Delete agent {name}?"):
        raise typer.Exit(1)
    with api_client(url, token, config_path) as client:
        client.call("DELETE", _path(name))
    console.print(f"deleted agent {name}", highlight=False)


@agents_app.command("run")
def run(
    name: NameArgument,
    task: Annotated[str, typer.Argument(help="What the agent is to do.")],
    overrides: Annotated[
        str | None,
        typer.Option(help='Narrower tools, hosts or limits as JSON: \'{"tools": ["read_file"]}\'.'),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Download the files the agent leaves into this directory."
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Run an agent on a task: follow its steps, print its answer and its files."""
    extra: dict[str, Any] = {}
    if overrides is not None:
        try:
            extra["overrides"] = json.loads(overrides)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="'--overrides'") from exc
    with api_client(url, token, config_path) as client:
        body = {"kind": "agent", "input": {"agent": name, "task": task, **extra}}
        job = json_body(client.call("POST", "/jobs", json=body))
        notes.print(f"job {job['id']}: agent {name}", highlight=False, markup=False)
        try:
            watch_job(client, job["id"])
        finally:
            download_artifacts(client, job["id"], output)


def download_artifacts(client: JobsClient, job_id: str, output: Path | None) -> None:
    """List a job's artifacts on stderr and, given ``output``, download them into it."""
    listed = json_body(client.call("GET", f"/jobs/{job_id}/artifacts"))["artifacts"]
    for artifact in listed:
        line = f"artifact {artifact['path']} ({artifact['size']} bytes)"
        if output is not None:
            target = (output / artifact["path"]).resolve()
            if not target.is_relative_to(output.resolve()):
                notes.print(f"skipped {escape(artifact['path'])}: leads outside {output}")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            path = quote(artifact["path"], safe="/")
            target.write_bytes(client.call("GET", f"/jobs/{job_id}/artifacts/{path}").content)
            line += f" -> {target}"
        notes.print(line, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``ember agents`` to ``app``."""
    app.add_typer(agents_app, name="agents")
