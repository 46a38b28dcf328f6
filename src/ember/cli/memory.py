"""``ember search`` and ``ember collections`` (and ``ember ingest``, in :mod:`ember.cli.ingest`):
the memory plane from a shell.

When an ember is running (``--url``, else the one ``ember up`` recorded for this home) they
use its API: a search is one request, and the embedding model stays in the server. With
``--local``, with ``--workspace``, or when none runs, they work on the local store directly
(the database and the vector indexes under ``$EMBER_HOME``), which needs no ``ember up``.
``collections export`` and ``import`` always work locally (they read and write local files).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ember.auth import DEFAULT_WORKSPACE
from ember.cli.common import (
    ConfigOption,
    LocalOption,
    TokenOption,
    UrlOption,
    WorkspaceOption,
    console,
    load,
    open_services,
    reported,
)
from ember.cli.ingest import ingest
from ember.cli.memory_remote import remote_memory, remote_url
from ember.errors import BadRequest, InvalidFilter, ValidationFailed
from ember.filters import parse_filter
from ember.memory.reindex import ReindexReport
from ember.memory.retrieval import SearchHit
from ember.memory.service import MemoryService

__all__ = ["collections_app", "register"]

collections_app = typer.Typer(help="Create, list and delete collections.", no_args_is_help=True)

CollectionOption = Annotated[str, typer.Option("--collection", "-C", help="Collection name.")]
MAX_QUERY_CHARS = 10000
"""The longest query, as the API's ``SearchIn.query`` (which also needs at least one)."""


@contextmanager
def _memory(path: Path | None, workspace: str) -> Iterator[MemoryService]:
    """The memory plane on the configured (migrated) database, as ``workspace`` sees it;
    closed, and the database disposed of, on the way out."""
    config = load(path)
    with open_services(config, migrate=True) as services:
        yield services.memory.in_workspace(workspace)


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
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Search a collection."""
    with reported():
        if not 1 <= len(query) <= MAX_QUERY_CHARS:
            raise ValidationFailed(f"QUERY must be 1 to {MAX_QUERY_CHARS} characters long")
        if mode not in ("hybrid", "dense", "keyword"):
            raise ValidationFailed(f"--mode must be hybrid, dense or keyword, not {mode!r}")
        try:
            raw: Any = json.loads(filter_json) if filter_json else None
        except json.JSONDecodeError as exc:
            raise InvalidFilter(f"--filter is not JSON: {exc}") from exc
        parse_filter(raw)
        config = load(config_path)
        server = remote_url(config, url, local=local, workspace=workspace)
        if server is not None:
            body = {"query": query, "k": k, "filter": raw, "mode": mode, "explain": explain}
            with remote_memory(server, token) as remote:
                hits = remote.search(collection, body)
        else:
            with _memory(config_path, workspace) as memory:
                where = memory.parse_filter(raw)
                found = memory.search(collection, query, k, where=where, mode=mode)  # type: ignore[arg-type]
            hits = [_hit(hit) for hit in found]
    table = Table("#", "score", "source", "text")
    if explain:
        table.add_column("dense")
        table.add_column("keyword")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit["text"].split())
        row = [str(rank), f"{hit['score']:.4f}", escape(hit["source"]), escape(text[:160])]
        if explain:
            ranks = hit.get("explain") or {}
            row += [str(ranks.get("dense_rank") or "-"), str(ranks.get("keyword_rank") or "-")]
        table.add_row(*row)
    console.print(table)


def _hit(hit: SearchHit) -> dict[str, Any]:
    """A local hit in the API's shape (the fields the table shows)."""
    ranks = {"dense_rank": hit.dense_rank, "keyword_rank": hit.keyword_rank}
    return {
        "score": hit.score,
        "source": hit.chunk.source,
        "text": hit.chunk.text,
        "explain": ranks,
    }


@collections_app.command("list")
def list_collections(
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """List collections."""
    with reported():
        server = remote_url(load(config_path), url, local=local, workspace=workspace)
        if server is not None:
            with remote_memory(server, token) as remote:
                rows = [
                    (c["name"], c["embedding_model"], str(c["created_at"]))
                    for c in remote.collections()
                ]
        else:
            with _memory(config_path, workspace) as memory:
                records = memory.collections.list(limit=10000)
            rows = [(r.name, r.embedding_model, r.created_at.isoformat()) for r in records]
    table = Table("name", "embedding model", "created")
    for name, model, created in rows:
        table.add_row(name, model or "-", created)
    console.print(table)


@collections_app.command("create")
def create_collection(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, _ and -.")],
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Create a collection."""
    with reported():
        server = remote_url(load(config_path), url, local=local, workspace=workspace)
        if server is not None:
            with remote_memory(server, token) as remote:
                remote.create(name, description)
        else:
            with _memory(config_path, workspace) as memory:
                model = memory.embedder.model_id
                memory.collections.create(name, description=description, embedding_model=model)
        console.print(f"created {name}")


@collections_app.command("delete")
def delete_collection(
    name: Annotated[str, typer.Argument(help="The collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Delete a collection and everything in it."""
    with reported():
        if not yes and not typer.confirm(f"Delete collection {name} and all its documents?"):
            raise typer.Exit(1)
        server = remote_url(load(config_path), url, local=local, workspace=workspace)
        if server is not None:
            with remote_memory(server, token) as remote:
                remote.delete(name)
        else:
            with _memory(config_path, workspace) as memory:
                memory.collections.delete(name)
        console.print(f"deleted {name}")


@collections_app.command("export")
def export_collection(
    name: Annotated[str, typer.Argument(help="The collection to export.")],
    path: Annotated[Path, typer.Argument(help="File to write (gzip JSON lines).")],
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    config_path: ConfigOption = None,
) -> None:
    """Export a collection (chunks, metadata and vectors) to a portable file."""
    with reported():
        if path.is_dir():
            raise BadRequest(f"{path} is a directory: name the file to write")
        if not path.parent.is_dir():
            raise BadRequest(f"{path}: the directory {path.parent} does not exist")
        with _memory(config_path, workspace) as memory:
            count = memory.export(name, path)
    console.print(f"exported {count} documents of {name} to {path}")


@collections_app.command("import")
def import_collection(
    path: Annotated[Path, typer.Argument(help="A file written by `collections export`.")],
    name: Annotated[str | None, typer.Option("--as", help="Name of the new collection.")] = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    config_path: ConfigOption = None,
) -> None:
    """Import an exported collection into a new collection (no re-embedding)."""
    with reported(), _memory(config_path, workspace) as memory:
        created, count = memory.import_(path, name)
    console.print(f"imported {count} documents into {created}")


@collections_app.command("reindex")
def reindex_collection(
    name: Annotated[str, typer.Argument(help="The collection to reindex.")],
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Re-embed a collection with the configured embedding model and swap in a new index.

    Only chunks without an embedding under that model are embedded, so it also rebuilds a
    damaged index from the database, and an interrupted run continues where it stopped.
    With a running ember it is a `reindex` job there, followed until it ends.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with reported(), Progress(*columns, console=console) as bar:
        server = remote_url(load(config_path), url, local=local, workspace=workspace)
        task = bar.add_task("reindexing", total=None)

        def advance(phase: str, done: int) -> None:
            bar.update(task, description=phase, completed=done)

        if server is not None:
            with remote_memory(server, token) as remote:
                result = remote.reindex(
                    name,
                    lambda e: (
                        advance(e.data["phase"], e.data["done"]) if e.type == "progress" else None
                    ),
                )
            report = ReindexReport(**result)
        else:
            with _memory(config_path, workspace) as memory:
                record = memory.collections.get(name)
                bar.update(task, total=memory.store.live_chunk_count(record.id))
                report = memory.reindex(name, lambda state: advance(state.phase, state.done))
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
