"""What every ``ember`` command shares: the consoles, the ``--config``, ``--url`` and
``--token`` options, error reporting, loading the configuration, opening its database, and a
client of a running ember.

Errors print as ``error[code]: detail`` on stderr, never as a traceback: :func:`translate`
maps what is not an :class:`~ember.errors.EmberError` (a file that cannot be written, a
truncated gzip file, JSON that does not parse, a question left unanswered) to the error it
stands for. Exit codes (:func:`exit_code`): 0 done; 2 the input is wrong, whoever noticed it
(typer's usage errors, an error of the ``bad_request`` family, invalid configuration); 1 the
command ran and failed. The command modules import from here, and :mod:`ember.cli.main` only
assembles them, so no command module imports ``main``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
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
from ember.errors import BadRequest, ConfigError, EmberError
from ember.services import MemoryBuilder, Services
from ember.storage import Migrator

__all__ = [
    "ConfigOption",
    "LocalOption",
    "TokenOption",
    "UrlOption",
    "WorkspaceOption",
    "api_client",
    "checked_url",
    "console",
    "exit_code",
    "load",
    "notes",
    "open_services",
    "print_error",
    "reported",
    "translate",
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
LocalOption = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Work on the local store under $EMBER_HOME even when an ember is running.",
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


_USER_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def _os_detail(exc: OSError) -> str:
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    reason = exc.strerror or str(exc)
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def translate(exc: Exception) -> EmberError:
    """The :class:`~ember.errors.EmberError` that ``exc``, escaping a command, stands for.

    An ``EmberError`` is itself. A question left unanswered (``typer.Abort``: end of input or
    Ctrl-C at a prompt), a damaged or truncated gzip file, JSON that does not parse, bytes
    that are not text, and a path that is missing, a directory, not one, or not allowed
    are ``bad_request``: the command's input is wrong. Any other ``OSError`` and anything
    else (a bug) are ``internal``, with the exception's type and message as the detail.
    """
    if isinstance(exc, EmberError):
        return exc
    if isinstance(exc, typer.Abort):
        return BadRequest("aborted: the question got no answer (pass --yes to skip it)")
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return BadRequest(f"the file is truncated or damaged: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return BadRequest(f"not JSON: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return BadRequest(f"not {exc.encoding} text: {exc}")
    if isinstance(exc, _USER_FILE_ERRORS):
        return BadRequest(_os_detail(exc))
    if isinstance(exc, OSError):
        return EmberError(_os_detail(exc))
    return EmberError(f"{type(exc).__name__}: {exc}")


def exit_code(error: EmberError) -> int:
    """2 when the input is wrong (``bad_request`` and its family, ``config_invalid``), as for
    typer's usage errors; 1 for every other failure."""
    return 2 if isinstance(error, BadRequest | ConfigError) else 1


@contextmanager
def reported() -> Iterator[None]:
    """Print whatever fails inside as ``error[code]: detail`` (see :func:`translate`) and
    exit with its :func:`exit_code`. ``typer.Exit`` and typer's usage errors pass through."""
    try:
        yield
    except (typer.Exit, typer.TyperException):
        raise
    except Exception as exc:
        if isinstance(exc, typer.Abort):
            notes.print()  # end the prompt's line
        error = translate(exc)
        print_error(error)
        raise typer.Exit(exit_code(error)) from None


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


def checked_url(url: str) -> str:
    """``url`` without a trailing slash.

    :raises typer.BadParameter: it is not an ``http://`` or ``https://`` URL (exit 2).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{url!r}: {exc}", param_hint="'--url'") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise typer.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="'--url'")
    return url.rstrip("/")


@contextmanager
def api_client(
    url: str | None, token: str | None, config_path: Path | None
) -> Iterator[JobsClient]:
    """A client of the chosen ember. Errors print as in ``reported()``; the configuration's
    own errors exit 2, everything the server (or a job) reports exits 1: the request was
    made, and the answer may be about the job or the server's state, not the command line."""
    with reported():
        base = url or _default_url(load(config_path))
    base = checked_url(base)
    client = JobsClient(base, token)
    try:
        yield client
    except (typer.Exit, typer.TyperException):
        raise
    except Exception as exc:
        print_error(translate(exc))
        raise typer.Exit(1) from None
    finally:
        client.close()
