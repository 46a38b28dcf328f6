"""``ember ingest``, ``ember search`` and ``ember collections``: the memory plane from a shell.

These commands work on the local store directly (the database and the vector indexes under
``$EMBER_HOME``); they do not need ``ember up``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ember.config import EmberConfig, load_config
from ember.errors import DocumentUnreadable, EmberError, ValidationFailed
from ember.memory.extract import BEIR_JSONL, SourceDocument, beir_documents, media_type_for
from ember.memory.filters import parse_filter
from ember.memory.ingest import IngestProgress
from ember.memory.reindex import ReindexProgress
from ember.memory.service import MemoryService
from ember.storage import Database, Migrator

__all__ = ["collections_app", "register"]

console = Console()
collections_app = typer.Typer(help="Create, list and delete collections.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", dir_okay=False)
]
CollectionOption = Annotated[str, typer.Option("--collection", "-C", help="Collection name.")]


def _memory(path: Path | None) -> tuple[EmberConfig, Database, MemoryService]:
    config = load_config(path, os.environ)
    database = Database.from_config(config)
    Migrator(database).upgrade()
    return config, database, MemoryService.build(config, database)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValidationFailed(f"{root}: no such file or directory")
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".") and media_type_for(path.name)
    )


def _documents(files: list[Path], root: Path) -> Iterator[SourceDocument | EmberError]:
    for path in files:
        source = str(path.relative_to(root)) if root.is_dir() else path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield DocumentUnreadable(f"{source}: {exc.strerror or exc}")
            continue
        if media_type_for(path.name) == BEIR_JSONL:
            yield from beir_documents(data)
        else:
            yield SourceDocument(source, data)


def _count(files: list[Path]) -> int:
    total = 0
    for path in files:
        if media_type_for(path.name) == BEIR_JSONL:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            total += 1
    return total


def ingest(
    path: Annotated[Path, typer.Argument(help="A file or a directory (read recursively).")],
    collection: CollectionOption,
    create: Annotated[bool, typer.Option(help="Create the collection if missing.")] = True,
    config_path: ConfigOption = None,
) -> None:
    """Ingest files into a collection: text, Markdown, HTML, PDF, and BEIR .jsonl corpora."""
    from ember.cli.main import reported

    with reported():
        _, database, memory = _memory(config_path)
        try:
            if create and collection not in {c.name for c in memory.collections.list(limit=10000)}:
                memory.collections.create(collection)
            files = _files(path)
            total = _count(files)
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=False) as bar:
                task = bar.add_task("ingesting", total=total, detail="")

                def advance(state: IngestProgress) -> None:
                    detail = (
                        f"{state.written} written, {state.skipped} skipped, "
                        f"{state.failed} failed, {state.chunks} chunks"
                    )
                    bar.update(task, completed=state.done, detail=detail)

                report = memory.ingest(collection, _documents(files, path), advance)
        finally:
            memory.close()
            database.dispose()
        failed = [o for o in report.outcomes if o.status == "failed"]
        for outcome in failed[:50]:
            console.print(
                f"[red]failed[/] {outcome.source or '(unnamed)'}: "
                f"error[{outcome.error_code}]: {outcome.error}",
                highlight=False,
                markup=False,
            )
        console.print(
            f"{report.count('created')} created, {report.count('updated')} updated, "
            f"{report.count('unchanged')} unchanged, {report.count('duplicate')} duplicate, "
            f"{len(failed)} failed; {report.chunks} chunks in {report.seconds:.1f} s"
        )
        if report.index_error:
            console.print(
                f"[yellow]vector index not updated[/] ({report.index_error}); the documents are "
                "stored and found by keyword search: run `ember collections reindex "
                f"{collection}`",
                highlight=False,
            )
        if failed or report.index_error:
            raise typer.Exit(1)


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOption,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many hits.")] = 5,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='Metadata filter as JSON, e.g. \'{"lang": "en"}\''),
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    explain: Annotated[bool, typer.Option(help="Show dense and keyword ranks.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Search a collection."""
    from ember.cli.main import reported

    with reported():
        if mode not in ("hybrid", "dense", "keyword"):
            raise ValidationFailed(f"--mode must be hybrid, dense or keyword, not {mode!r}")
        try:
            raw: Any = json.loads(filter_json) if filter_json else None
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"--filter is not JSON: {exc}") from exc
        _, database, memory = _memory(config_path)
        try:
            hits = memory.search(collection, query, k, where=parse_filter(raw), mode=mode)  # type: ignore[arg-type]
        finally:
            memory.close()
            database.dispose()
        table = Table("#", "score", "source", "text")
        if explain:
            table.add_column("dense")
            table.add_column("keyword")
        for rank, hit in enumerate(hits, start=1):
            text = " ".join(hit.chunk.text.split())
            row = [str(rank), f"{hit.score:.4f}", hit.chunk.source, text[:160]]
            if explain:
                row += [str(hit.dense_rank or "-"), str(hit.keyword_rank or "-")]
            table.add_row(*row)
        console.print(table)


@collections_app.command("list")
def list_collections(config_path: ConfigOption = None) -> None:
    """List collections."""
    from ember.cli.main import reported

    with reported():
        _, database, memory = _memory(config_path)
        table = Table("name", "embedding model", "created")
        for record in memory.collections.list(limit=10000):
            table.add_row(record.name, record.embedding_model or "-", record.created_at.isoformat())
        database.dispose()
        console.print(table)


@collections_app.command("create")
def create_collection(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, _ and -.")],
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    config_path: ConfigOption = None,
) -> None:
    """Create a collection."""
    from ember.cli.main import reported
    from ember.serve_app.collections import NAME_PATTERN

    with reported():
        import re

        if not re.fullmatch(NAME_PATTERN, name):
            raise ValidationFailed(f"{name!r} is not a valid name (lowercase, digits, _ and -)")
        _, database, memory = _memory(config_path)
        memory.collections.create(name, description=description)
        database.dispose()
        console.print(f"created {name}")


@collections_app.command("delete")
def delete_collection(
    name: Annotated[str, typer.Argument(help="The collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Delete a collection and everything in it."""
    from ember.cli.main import reported

    with reported():
        if not yes and not typer.confirm(f"Delete collection {name} and all its documents?"):
            raise typer.Exit(1)
        _, database, memory = _memory(config_path)
        memory.collections.delete(name)
        database.dispose()
        console.print(f"deleted {name}")


@collections_app.command("export")
def export_collection(
    name: Annotated[str, typer.Argument(help="The collection to export.")],
    path: Annotated[Path, typer.Argument(help="File to write (gzip JSON lines).")],
    config_path: ConfigOption = None,
) -> None:
    """Export a collection (chunks, metadata and vectors) to a portable file."""
    from ember.cli.main import reported

    with reported():
        _, database, memory = _memory(config_path)
        try:
            count = memory.export(name, path)
        finally:
            memory.close()
            database.dispose()
        console.print(f"exported {count} documents of {name} to {path}")


@collections_app.command("import")
def import_collection(
    path: Annotated[Path, typer.Argument(help="A file written by `collections export`.")],
    name: Annotated[str | None, typer.Option("--as", help="Name of the new collection.")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Import an exported collection into a new collection (no re-embedding)."""
    from ember.cli.main import reported

    with reported():
        _, database, memory = _memory(config_path)
        try:
            created, count = memory.import_(path, name)
        finally:
            memory.close()
            database.dispose()
        console.print(f"imported {count} documents into {created}")


@collections_app.command("reindex")
def reindex_collection(
    name: Annotated[str, typer.Argument(help="The collection to reindex.")],
    config_path: ConfigOption = None,
) -> None:
    """Re-embed a collection with the configured embedding model and swap in a new index.

    Only chunks without an embedding under that model are embedded, so it also rebuilds a
    damaged index from the database, and an interrupted run continues where it stopped.
    """
    from ember.cli.main import reported

    with reported():
        _, database, memory = _memory(config_path)
        try:
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as bar:
                record = memory.collections.get(name)
                total = memory.store.live_chunk_count(record.id)
                task = bar.add_task("reindexing", total=total)

                def advance(state: ReindexProgress) -> None:
                    bar.update(task, description=state.phase, completed=state.done)

                report = memory.reindex(name, advance)
        finally:
            memory.close()
            database.dispose()
        console.print(
            f"{name}: {report.from_model or '(no index)'} -> {report.to_model}, "
            f"{report.embedded} chunks embedded, {report.vectors} vectors in index "
            f"{report.index_id} ({report.seconds:.1f} s)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add the memory commands to ``app``."""
    app.command()(ingest)
    app.command()(search)
    app.add_typer(collections_app, name="collections")
