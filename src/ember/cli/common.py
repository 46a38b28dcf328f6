"""What every ``ember`` command shares: the consoles, the ``--config``, ``--url`` and
``--token`` options, error reporting, loading the configuration, opening its database, and a
client of a running ember.

Errors print as ``error[code]: detail`` on stderr, never as a traceback. Exit codes: 0 done,
1 failed, 2 bad usage or invalid configuration. The command modules import from here, and
:mod:`ember.cli.main` only assembles them, so no command module imports ``main``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from ember.cli.jobs_client import JobsClient
from ember.config import EmberConfig, load_config
from ember.errors import ConfigError, EmberError
from ember.services import MemoryBuilder, Services
from ember.storage import Migrator

__all__ = [
    "ConfigOption",
    "TokenOption",
    "UrlOption",
    "WorkspaceOption",
    "api_client",
    "console",
    "load",
    "notes",
    "open_services",
    "print_error",
    "reported",
]

console = Console()
"""stdout: what a command answers."""
notes = Console(stderr=True)
"""stderr: notes, warnings and ``error[code]`` lines."""

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $EMBER_CONFIG, else built-in defaults).",
        dir_okay=False,
    ),
]
WorkspaceOption = Annotated[
    str,
    typer.Option(
        "--workspace",
        "-w",
        help="The workspace whose collections this works on (the database is the operator's: "
        "every workspace is reachable).",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="ember's HTTP API (default: http://{server.host}:{server.port} of the config).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="EMBER_TOKEN",
        show_envvar=True,
        help="API token, sent as `Authorization: Bearer` (none: no header, which a loopback "
        "ember without tokens accepts).",
    ),
]


def print_error(error: EmberError) -> None:
    """Print ``error[code]: detail`` on stderr, in bold red."""
    message = escape(f"error[{error.code}]: {error.detail}")
    notes.print(f"[bold red]{message}[/]", highlight=False, soft_wrap=True)


@contextmanager
def reported() -> Iterator[None]:
    """Print an :class:`~ember.errors.EmberError` raised inside as ``error[code]: detail`` and
    exit 2 for a :class:`~ember.errors.ConfigError`, else 1."""
    try:
        yield
    except EmberError as exc:
        print_error(exc)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None


def load(path: Path | None, **server_overrides: Any) -> EmberConfig:
    """The configuration of ``path`` (else ``$EMBER_CONFIG``, else defaults) and the
    environment, with the ``server`` settings given here (those not ``None``) replaced."""
    config = load_config(path, os.environ)
    server = {key: value for key, value in server_overrides.items() if value is not None}
    if server:
        config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    return config


@contextmanager
def open_services(
    config: EmberConfig, *, migrate: bool = False, memory: MemoryBuilder | None = None
) -> Iterator[Services]:
    """ember's services for ``config`` (the composition root), over the configured database
    upgraded to the latest migration first with ``migrate``; ``memory`` builds the memory
    plane (default: the one of this process). Closed (memory plane and database) on the way
    out, whatever happens."""
    services = Services.build(config, memory=memory)
    try:
        if migrate:
            Migrator(services.database).upgrade()
        yield services
    finally:
        services.close()


def _default_url(config: EmberConfig) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        config.server.host, config.server.host
    )
    return f"http://{f'[{host}]' if ':' in host else host}:{config.server.port}"


@contextmanager
def api_client(
    url: str | None, token: str | None, config_path: Path | None
) -> Iterator[JobsClient]:
    """A client of the chosen ember. Errors print as in ``reported()``; the configuration's
    own errors exit 2, everything the server (or a job) reports exits 1."""
    with reported():
        base = url or _default_url(load(config_path))
    try:
        parsed = httpx.URL(base)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{base!r}: {exc}", param_hint="'--url'") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise typer.BadParameter(
            f"{base!r} is not an http:// or https:// URL", param_hint="'--url'"
        )
    client = JobsClient(base, token)
    try:
        yield client
    except EmberError as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    finally:
        client.close()
