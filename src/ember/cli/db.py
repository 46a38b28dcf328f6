"""``ember db upgrade|backup|restore``: the configured database's schema, backups and restores.

``upgrade`` applies every pending migration; ``backup`` writes an online copy (SQLite) or a
``pg_dump`` (Postgres); ``restore`` replaces every row with a backup's, after asking, then
rebuilds every collection's vector index from the restored ``embeddings`` rows (an index is a
cache of that table, and the one on disk still holds what was indexed after the backup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember.cli.common import ConfigOption, console, load, open_services, reported
from ember.storage import BackupTool, Migrator

__all__ = ["db_app", "register"]

db_app = typer.Typer(help="Database schema, backups and restores.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(config_path: ConfigOption = None) -> None:
    """Apply every pending migration (idempotent)."""
    with reported(), open_services(load(config_path)) as services:
        revision = Migrator(services.database).upgrade()
    console.print(f"database at revision {revision}")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="File to write the backup to.")],
    config_path: ConfigOption = None,
) -> None:
    """Back up the database to PATH (online for SQLite, pg_dump for Postgres)."""
    with reported(), open_services(load(config_path)) as services:
        written = BackupTool(services.database).backup(path)
    console.print(f"backup written to {written} ({written.stat().st_size} bytes)")


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="Backup file written by `ember db backup`.")],
    config_path: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the whole database with the backup at PATH, then rebuild every vector index
    from it. Stop ember first."""
    with reported():
        config = load(config_path)
        if not yes and not typer.confirm(
            f"Replace every row of {config.database_url.split('@')[-1]} with {path}?"
        ):
            raise typer.Exit(1)
        with open_services(config) as services:
            BackupTool(services.database).restore(path)
            console.print(f"restored from {path}")
            rebuilt = services.memory.indexes.rebuild_every_live()
        vectors = sum(count for _, count in rebuilt)
        console.print(
            f"rebuilt {len(rebuilt)} vector index{'' if len(rebuilt) == 1 else 'es'} "
            f"({vectors} vectors) from the restored tables"
        )


def register(app: typer.Typer) -> None:
    """Add ``ember db`` to ``app``."""
    app.add_typer(db_app, name="db")
