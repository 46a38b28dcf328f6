"""``ember ingest PATH``: feed files into a collection, in this process or on a Ray cluster.

Without ``--bulk`` the documents go to a running ember's API in batches when one runs (see
:mod:`ember.cli.memory_remote`: the embedding model stays in the server), else through the
single-process ingest here. With ``--bulk``
(the default when ``RAY_ADDRESS`` names a cluster, as it does for a ``ray job submit``
entrypoint) they go through the Ray Data pipeline on that cluster, or on a local one started
for the run. Either way the database and indexes are the configured ones, and a run that
stops half-way is finished by running it again (written documents are skipped by hash).

A missing PATH is ``validation_failed`` (exit 2); a directory without a file to ingest is
``not_found`` (exit 1), and then no collection is created.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from opentelemetry.trace import Tracer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
from ember.cli.memory_remote import remote_memory, remote_url
from ember.cli.stderr_filter import RAY_DATA_RESTART_WARNING, dropping
from ember.config import EmberConfig
from ember.errors import NotFound, ValidationFailed
from ember.memory.ingest import IngestProgress, IngestReport
from ember.memory.service import MemoryService
from ember.memory.sources import count_documents, list_files, read_documents
from ember.observability.metrics import Metrics
from ember.storage import Database

if TYPE_CHECKING:
    from ember.cluster.runtime import Runtime

__all__ = ["default_collection", "ingest"]


def default_collection(path: Path) -> str:
    """The collection a path goes to when none is named: its name, lowercased, with runs of
    other characters than letters, digits, ``_`` and ``-`` made one ``-``."""
    name = re.sub(r"[^a-z0-9_-]+", "-", path.resolve().stem.lower()).strip("-")
    return name or "default"


def _bar(total: int) -> tuple[Progress, object]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    bar = Progress(*columns, console=console, transient=False)
    return bar, bar.add_task("ingesting", total=total, detail="")


def _run(
    config: EmberConfig,
    memory: MemoryService,
    path: Path,
    files: list[Path],
    collection: str,
    bulk: bool,
) -> IngestReport:
    bar, task = _bar(count_documents(files, path))

    def advance(state: IngestProgress) -> None:
        detail = (
            f"{state.written} written, {state.skipped} skipped, "
            f"{state.failed} failed, {state.chunks} chunks"
        )
        bar.update(task, completed=state.done, detail=detail)  # type: ignore[arg-type]

    with bar:
        if not bulk:
            return memory.ingest(collection, read_documents(files, path), advance)
        from ember.pipelines import BulkIngest

        return BulkIngest(config, memory).run(collection, path, advance)


def _send(
    server: str, token: str | None, path: Path, files: list[Path], collection: str, create: bool
) -> IngestReport:
    bar, task = _bar(count_documents(files, path))

    def advance(done: int, report: IngestReport) -> None:
        written = report.count("created", "updated")
        detail = (
            f"{written} written, {report.count('unchanged', 'duplicate')} skipped, "
            f"{report.count('failed')} failed, {report.chunks} chunks"
        )
        bar.update(task, completed=done, detail=detail)  # type: ignore[arg-type]

    with remote_memory(server, token) as remote, bar:
        if create:
            remote.create(collection, exist_ok=True)
        return remote.ingest(collection, read_documents(files, path), advance)


def _report(report: IngestReport, collection: str) -> None:
    failed = [o for o in report.outcomes if o.status == "failed"]
    for outcome in failed[:50]:
        console.print(
            f"[red]failed[/] {escape(outcome.source or '(unnamed)')}: "
            + escape(f"error[{outcome.error_code}]: {outcome.error}"),
            highlight=False,
        )
    console.print(
        f"{report.count('created')} created, {report.count('updated')} updated, "
        f"{report.count('unchanged')} unchanged, {report.count('duplicate')} duplicate, "
        f"{len(failed)} failed; {report.chunks} chunks in {report.seconds:.1f} s"
    )
    if report.index_error:
        console.print(
            f"[yellow]vector index not updated[/] ({escape(report.index_error)}); the "
            "documents are stored and found by keyword search: "
            f"run `ember collections reindex {collection}`",
            highlight=False,
        )
    if failed or report.index_error:
        raise typer.Exit(1)


def ingest(
    path: Annotated[Path, typer.Argument(help="A file or a directory (read recursively).")],
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-C", help="Collection name; default: PATH's name."),
    ] = None,
    create: Annotated[bool, typer.Option(help="Create the collection if missing.")] = True,
    bulk: Annotated[
        bool | None,
        typer.Option(
            "--bulk/--no-bulk",
            help="Run the Ray Data pipeline on the cluster in RAY_ADDRESS (else a local one); "
            "default: on when RAY_ADDRESS is set.",
        ),
    ] = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    local: LocalOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Ingest files into a collection: text, Markdown, HTML, PDF, and BEIR .jsonl corpora."""
    with reported():
        config = load(config_path)
        name = collection or default_collection(path)
        if not path.exists():
            raise ValidationFailed(f"{path}: no such file or directory")
        files = list_files(path)
        if not files:
            raise NotFound(
                f"{path}: no file to ingest in it (supported: .txt, .md, .html, .pdf, .jsonl; "
                "hidden names are left out); no collection created"
            )
        use_ray = bool(os.environ.get("RAY_ADDRESS")) if bulk is None else bulk
        server = None if use_ray else remote_url(config, url, local=local, workspace=workspace)
        if server is not None:
            _report(_send(server, token, path, files, name, create), name)
            return
        runtime = _connect(config) if use_ray else None
        try:
            plane = _cluster_memory if use_ray else None
            with open_services(config, migrate=True, memory=plane) as services:
                memory = services.memory.in_workspace(workspace)
                if create:
                    memory.collections.ensure(name, embedding_model=memory.embedder.model_id)
                with dropping([RAY_DATA_RESTART_WARNING] if use_ray else []):
                    report = _run(config, memory, path, files, name, use_ray)
        finally:
            if runtime is not None:
                runtime.leave()
        _report(report, name)


def _connect(config: EmberConfig) -> Runtime:
    """Join the cluster of ``ray.address`` / ``RAY_ADDRESS``, else start a local one (no
    dashboard; it stops with this process)."""
    from ember.cluster.runtime import Runtime

    quiet = config.model_copy(update={"ray": config.ray.model_copy(update={"dashboard": False})})
    runtime = Runtime(quiet)
    runtime.start()
    return runtime


def _cluster_memory(
    config: EmberConfig,
    database: Database,
    *,
    tracer: Tracer | None = None,
    metrics: Metrics | None = None,
) -> MemoryService:
    """The memory plane as a process on the cluster builds it (shard actors, an embedding
    pool), for a bulk ingest on Ray."""
    from ember.actors.memory_plane import cluster_memory

    return cluster_memory(config, database, tracer=tracer, metrics=metrics)
