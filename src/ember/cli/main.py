"""The ``ember`` command line.

Errors print as ``error[code]: detail`` on stderr, never as a traceback. Exit codes: 0 done,
1 failed, 2 bad usage or invalid configuration.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ember import __version__
from ember.auth import SqlTokenRepository
from ember.cli.jobs import register as register_job_commands
from ember.cli.memory import register as register_memory_commands
from ember.cli.models import register as register_model_commands
from ember.cli.tokens import register as register_token_commands
from ember.config import EmberConfig, load_config
from ember.errors import ConfigError, EmberError
from ember.observability import configure_logging
from ember.storage import BackupTool, Database, Migrator

__all__ = ["app", "main", "reported"]

T = TypeVar("T")
console = Console()
errors = Console(stderr=True)

app = typer.Typer(
    name="ember",
    help="ember: a local-first AI compute cluster on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema, backups and restores.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $EMBER_CONFIG, else built-in defaults).",
        dir_okay=False,
    ),
]


@contextmanager
def reported() -> Iterator[None]:
    try:
        yield
    except EmberError as exc:
        message = escape(f"error[{exc.code}]: {exc.detail}")
        errors.print(f"[bold red]{message}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None


def _config(path: Path | None, **overrides: Any) -> EmberConfig:
    config = load_config(path, os.environ)
    server = {key: value for key, value in overrides.items() if value is not None}
    if server:
        config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    return config


def _with_database(config: EmberConfig, work: Callable[[Database], T]) -> T:
    database = Database.from_config(config)
    try:
        return work(database)
    finally:
        database.dispose()


def _auth_mode(config: EmberConfig, tokens_exist: bool) -> str:
    if tokens_exist:
        return "bearer tokens required (`ember tokens list`)"
    if config.auth.loopback_without_tokens:
        return "no API tokens: loopback clients only, as `local` (`ember tokens create`)"
    return "no API tokens: every request is refused (`ember tokens create`)"


@app.command()
def version() -> None:
    """Print ember's version."""
    console.print(f"ember {__version__}", highlight=False)


@app.command()
def up(
    config_path: ConfigOption = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="HTTP port (overrides config).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP interface (overrides config).")] = None,
) -> None:
    """Start (or join) a Ray cluster and serve the API until Ctrl-C."""
    from ember.cluster import Runtime, check_port_free

    with reported():
        config = _config(config_path, port=port, host=host)
        configure_logging("ember", config.logging.level, config.logging.format)
        server = config.server
        check_port_free(server.host, server.port)
        revision = _with_database(config, lambda database: Migrator(database).upgrade())
        console.print(f"database  {config.database_url.split('@')[-1]}  (revision {revision})")
        tokens = _with_database(
            config, lambda database: SqlTokenRepository(database).has_active_tokens()
        )
        runtime = Runtime(config)
        stop = threading.Event()
        with console.status("starting Ray…"):
            info = runtime.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            with console.status("deploying the Serve app…"):
                url = runtime.deploy()
            table = Table(show_header=False, box=None)
            table.add_row("API", url)
            table.add_row("OpenAPI", f"{url}/openapi.json")
            table.add_row("Docs", f"{url}/docs")
            table.add_row("Ready", f"{url}/ready")
            table.add_row("Auth", _auth_mode(config, tokens))
            table.add_row("Ray", f"{info.address} ({'started' if info.started_here else 'joined'})")
            if info.dashboard_url:
                table.add_row("Dashboard", info.dashboard_url)
            console.print(table)
            console.print("[green]ember is up.[/] Press Ctrl-C to stop.")
            stop.wait()
        finally:
            console.print("stopping…")
            runtime.stop()
            console.print("stopped.")


@app.command()
def status(config_path: ConfigOption = None) -> None:
    """Show the cluster, the database and the Serve app."""
    from ember.cluster import probe_cluster

    with reported():
        config = _config(config_path)
        table = Table("part", "state", "detail")
        healthy = True

        def check_database(database: Database) -> tuple[str, str]:
            migrator = Migrator(database)
            database.ping()
            current, head = migrator.current(), migrator.head()
            state = "ok" if current == head else "needs upgrade"
            return state, f"{database.safe_url} revision {current or 'none'} (head {head})"

        try:
            state, detail = _with_database(config, check_database)
        except EmberError as exc:
            state, detail = "down", str(exc)
        healthy &= state == "ok"
        table.add_row("database", state, detail)

        cluster = probe_cluster(config)
        if cluster.reachable:
            apps = ", ".join(f"{k}={v}" for k, v in cluster.applications.items()) or "none"
            table.add_row(
                "ray", "ok", f"{cluster.address}: {cluster.nodes} node(s), {cluster.cpus:g} CPU"
            )
            table.add_row("serve", "ok" if apps != "none" else "none", apps)
        else:
            healthy = False
            table.add_row("ray", "down", cluster.error or "unreachable")

        url = f"http://{config.server.host}:{config.server.port}/ready"
        try:
            response = httpx.get(url, timeout=5.0)
            api_state = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
            api_detail = url
        except httpx.HTTPError as exc:
            api_state, api_detail = "down", f"{url}: {exc}"
        healthy &= api_state == "ok"
        table.add_row("api", api_state, api_detail)
        console.print(table)
        if not healthy:
            raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(config_path: ConfigOption = None) -> None:
    """Apply every pending migration (idempotent)."""
    with reported():
        config = _config(config_path)
        revision = _with_database(config, lambda database: Migrator(database).upgrade())
        console.print(f"database at revision {revision}")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="File to write the backup to.")],
    config_path: ConfigOption = None,
) -> None:
    """Back up the database to PATH (online for SQLite, pg_dump for Postgres)."""
    with reported():
        config = _config(config_path)
        written = _with_database(config, lambda database: BackupTool(database).backup(path))
        console.print(f"backup written to {written} ({written.stat().st_size} bytes)")


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="Backup file written by `ember db backup`.")],
    config_path: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the whole database with the backup at PATH. Stop ember first."""
    with reported():
        config = _config(config_path)
        if not yes and not typer.confirm(
            f"Replace every row of {config.database_url.split('@')[-1]} with {path}?"
        ):
            raise typer.Exit(1)
        _with_database(config, lambda database: BackupTool(database).restore(path))
        console.print(f"restored from {path}")


register_memory_commands(app)
register_token_commands(app)
register_model_commands(app)
register_job_commands(app)


def main() -> None:
    """Entry point of the ``ember`` script."""
    app()
