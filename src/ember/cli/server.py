"""``ember up|status|version``: run this node's ember, check on it, and say which one it is.

``up`` migrates the database, starts (or joins) the Ray cluster and deploys the Serve app,
prints a summary (where the API, the dashboard and the logs are) and serves until Ctrl-C or
SIGTERM; while it serves, ``home/run/serve.json`` records where (``{"url", "pid"}``), removed
on a clean stop. Its output is its own lines and the summary: what the cluster's processes
print (Serve's proxy, controller and replicas, job workers, model hosts, ember's JSON lines
from them included) stays in Ray's log folder, named in the summary.

``status`` checks the database, the cluster, the Serve app, the agent sandbox and the API's
``/ready`` (at ``--url``, else where a running ``up`` recorded, else the config's
``server.host:port``) and exits 1 unless every part is ok; a sandbox that cannot run here is
shown with its missing prerequisite but fails only agent jobs that run commands, so it does
not change the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from ember import __version__
from ember.cli.common import (
    ConfigOption,
    UrlOption,
    _default_url,
    checked_url,
    console,
    load,
    open_services,
    reported,
)
from ember.cli.stderr_filter import RAY_DATA_RESTART_WARNING, dropping
from ember.config import EmberConfig
from ember.errors import EmberError
from ember.observability import configure_logging
from ember.storage import Database, Migrator

__all__ = [
    "recorded_url",
    "register",
    "serve_record",
    "serving_recorded",
    "status",
    "up",
    "version",
]


def serve_record(config: EmberConfig) -> Path:
    """Where a running ``ember up`` records its API's URL and its pid: ``home/run/serve.json``."""
    return config.home_dir / "run" / "serve.json"


@contextmanager
def serving_recorded(config: EmberConfig) -> Iterator[str]:
    """Record (for ``ember status``) that this process serves the API of ``config`` at its
    URL, yielded; the record is removed on the way out unless another ``up`` replaced it."""
    path = serve_record(config)
    url = _default_url(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    partial.replace(path)
    try:
        yield url
    finally:
        if _read_record(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def _read_record(path: Path) -> dict[str, object]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and another user's
    return True


def recorded_url(config: EmberConfig) -> str | None:
    """The URL a running ``ember up`` of ``config``'s home recorded; ``None`` when there is
    no record, it is unreadable, or the process that wrote it is gone."""
    record = _read_record(serve_record(config))
    url, pid = record.get("url"), record.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or pid <= 0 or not _alive(pid):
        return None
    return url


def _auth_mode(config: EmberConfig, tokens_exist: bool) -> str:
    if tokens_exist:
        return "bearer tokens required (`ember tokens list`)"
    if config.auth.loopback_without_tokens:
        return "no API tokens: loopback clients only, as `local` (`ember tokens create`)"
    return "no API tokens: every request is refused (`ember tokens create`)"


def version() -> None:
    """Print ember's version."""
    console.print(f"ember {__version__}", highlight=False)


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
        config = load(config_path, port=port, host=host)
        configure_logging("ember", config.logging.level, config.logging.format)
        server = config.server
        check_port_free(server.host, server.port)
        with open_services(config) as services:
            revision = Migrator(services.database).upgrade()
            tokens = services.tokens.has_active_tokens() or (
                services.tokens.ever_created() and not config.auth.loopback_after_tokens
            )
        console.print(f"database  {config.database_url.split('@')[-1]}  (revision {revision})")
        runtime = Runtime(config, quiet=True)
        stop = threading.Event()
        with console.status("starting Ray…"):
            info = runtime.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            with dropping([RAY_DATA_RESTART_WARNING]), console.status("deploying the Serve app…"):
                url = runtime.deploy()
            table = Table(show_header=False, box=None)
            table.add_row("UI", f"{url}/")
            table.add_row("API", url)
            table.add_row("OpenAPI", f"{url}/openapi.json")
            table.add_row("Docs", f"{url}/docs")
            table.add_row("Ready", f"{url}/ready")
            table.add_row("Auth", _auth_mode(config, tokens))
            table.add_row("Ray", f"{info.address} ({'started' if info.started_here else 'joined'})")
            if info.dashboard_url:
                table.add_row("Dashboard", info.dashboard_url)
            if info.log_dir:
                table.add_row("Logs", f"{info.log_dir}  (Ray's, and ember's from its workers)")
            console.print(table)
            console.print("[green]ember is up.[/] Press Ctrl-C to stop.")
            with serving_recorded(config):
                stop.wait()
        finally:
            console.print("stopping…")
            runtime.stop()
            console.print("stopped.")


def _sandbox_state() -> tuple[str, str]:
    """Whether agent commands can run here: the sandbox's runner and what it enforces, or the
    missing prerequisite (agent jobs that run commands then fail ``sandbox_unavailable``)."""
    from ember.sandbox.bubblewrap import BubblewrapSandbox

    try:
        found = BubblewrapSandbox().capabilities()
    except EmberError as exc:
        return "unavailable", exc.detail
    weaker = f"; {'; '.join(found.notes)}" if found.notes else ""
    return "ok", f"{found.runner}: {', '.join(sorted(found.enforced))}{weaker}"


def _vm_state(config: EmberConfig) -> tuple[str, str]:
    """Whether ``vm`` jobs can run here: libvirt's and QEMU's versions, the guest image's
    kernel and the acceleration once a VM decided it, or what is missing. Boots nothing."""
    try:
        with open_services(config) as services:
            ok, detail = services.vm_runner.describe()
    except EmberError as exc:
        ok, detail = False, exc.detail
    return ("ok" if ok else "unavailable"), detail


def _check_database(database: Database) -> tuple[str, str]:
    migrator = Migrator(database)
    database.ping()
    current, head = migrator.current(), migrator.head()
    state = "ok" if current == head else "needs upgrade"
    return state, f"{database.safe_url} revision {current or 'none'} (head {head})"


def status(config_path: ConfigOption = None, url: UrlOption = None) -> None:
    """Show the cluster, the database, the Serve app and the API (``--url``, else where a
    running ``ember up`` serves, else the config's ``server.host:port``)."""
    from ember.cluster import probe_cluster

    if url is not None:
        url = checked_url(url)
    with reported():
        config = load(config_path)
        base = url or recorded_url(config) or _default_url(config)
        table = Table("part", "state", "detail")
        healthy = True

        try:
            with open_services(config) as services:
                state, detail = _check_database(services.database)
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

        table.add_row("sandbox", *_sandbox_state())
        table.add_row("vm", *_vm_state(config))

        ready = f"{base}/ready"
        try:
            response = httpx.get(ready, timeout=5.0)
            api_state = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
            api_detail = ready
        except httpx.HTTPError as exc:
            api_state, api_detail = "down", f"{ready}: {exc}"
        healthy &= api_state == "ok"
        table.add_row("api", api_state, api_detail)
        console.print(table)
        if not healthy:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``ember version``, ``ember up`` and ``ember status`` to ``app``."""
    app.command()(version)
    app.command()(up)
    app.command()(status)
