"""``ember models list|pin|warm|ps|rm``: local GGUF models.

``list``, ``pin`` and ``rm`` work on the local database (no server needed); ``pin`` registers
a file under a name, pinned to the sha256 of its bytes (``--digest`` makes it refuse a file
that is not the one you expect). ``warm`` and ``ps`` ask the running ember through its Ollama
API: ``warm`` loads a model as an empty ``/api/generate`` does, ``ps`` is ``/api/ps``; ``rm``
also unloads the model when ember is running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ember.cli.common import (
    ConfigOption,
    TokenOption,
    UrlOption,
    api_client,
    console,
    load,
    notes,
    open_services,
    reported,
)
from ember.errors import ModelDigestMismatch, NotReady, ValidationFailed
from ember.models.digest import file_digest, normalize_digest, require_gguf
from ember.models.records import ModelRecord
from ember.models.templates import GGUF, TEMPLATES

__all__ = ["models_app", "register"]

models_app = typer.Typer(
    help="Register, load, inspect and remove local GGUF models.", no_args_is_help=True
)
Name = Annotated[str, typer.Argument(help="The model's name (what requests ask for).")]


def _size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


@models_app.command("list")
def list_models(config_path: ConfigOption = None) -> None:
    """The registered models, with their pinned digests."""
    with reported(), open_services(load(config_path), migrate=True) as services:
        records = services.catalog.all()
    table = Table("name", "digest", "size", "template", "warm", "path")
    for r in records:
        table.add_row(
            r.name, r.digest[:19], _size(r.size_bytes), r.template, "yes" if r.warm else "", r.path
        )
    console.print(table)


@models_app.command("pin")
def pin(
    name: Name,
    path: Annotated[
        Path, typer.Option("--path", help="The GGUF file.", exists=True, dir_okay=False)
    ],
    digest: Annotated[
        str | None,
        typer.Option(help="Refuse the file unless its sha256 is this (`sha256:…` or hex)."),
    ] = None,
    template: Annotated[
        str, typer.Option(help=f"Prompt template: {', '.join([*TEMPLATES, GGUF])}.")
    ] = "qa",
    stop: Annotated[
        list[str] | None, typer.Option("--stop", help="A stop sequence; repeat for more.")
    ] = None,
    warm: Annotated[bool, typer.Option(help="Load it at start; /ready waits for it.")] = False,
    context_length: Annotated[
        int | None, typer.Option(help="The model's trained context length.")
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Register a GGUF file under NAME, pinned to the sha256 of its bytes."""
    with reported():
        if template != GGUF and template not in TEMPLATES:
            known = ", ".join([*TEMPLATES, GGUF])
            raise ValidationFailed(f"unknown template {template!r}; known: {known}")
        expected = None
        if digest is not None:
            try:
                expected = normalize_digest(digest)
            except ValueError as exc:
                raise ValidationFailed(str(exc)) from None
        require_gguf(path)
        notes.print(f"hashing {path} ...")
        actual = file_digest(path)
        if expected is not None and actual != expected:
            raise ModelDigestMismatch(f"{path} has {actual}, not {expected}")
    record = ModelRecord(
        name=name,
        path=str(path.resolve()),
        digest=actual,
        size_bytes=path.stat().st_size,
        template=template,
        stop=tuple(stop or ()),
        context_length=context_length,
        warm=warm,
    )
    with reported(), open_services(load(config_path), migrate=True) as services:
        stored = services.catalog.put(record)
    console.print(f"pinned {stored.name} to {stored.digest}", soft_wrap=True)


@models_app.command("warm")
def warm(
    name: Name,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Load NAME on the running ember now and keep it loaded (until evicted for room)."""
    with api_client(url, token, config_path) as client:
        client.call(
            "POST", "/api/generate", json={"model": name, "keep_alive": -1, "stream": False}
        )
    console.print(f"{name} is loaded")


@models_app.command("ps")
def ps(url: UrlOption = None, token: TokenOption = None, config_path: ConfigOption = None) -> None:
    """The models loaded now, on which node, and until when."""
    with api_client(url, token, config_path) as client:
        loaded = client.call("GET", "/api/ps").json().get("models", [])
    table = Table("name", "node", "hosts", "size", "processor", "until")
    for model in loaded:
        ember = model.get("ember", {})
        table.add_row(
            model["name"],
            str(ember.get("node_id", "-"))[:12],
            str(ember.get("replicas", 1)),
            _size(int(model.get("size", 0))),
            "GPU" if ember.get("gpu") else "CPU",
            model.get("expires_at") or "evicted for room only",
        )
    console.print(table)


@models_app.command("rm")
def remove(
    name: Name,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Forget NAME (the file stays) and unload it if ember is running."""
    with reported(), open_services(load(config_path), migrate=True) as services:
        services.catalog.get(name)
    try:
        with api_client(url, token, config_path) as client:
            answer = client.call(
                "POST", "/api/generate", json={"model": name, "keep_alive": 0, "stream": False}
            )
        if answer.json().get("done_reason") != "unload":
            notes.print(f"ember did not unload {name}: that needs a token with the admin scope")
    except (typer.Exit, NotReady):
        notes.print("ember is not running or did not unload it; it is removed from the registry")
    with reported(), open_services(load(config_path), migrate=True) as services:
        services.catalog.remove(name)
    console.print(f"removed {name}")


def register(app: typer.Typer) -> None:
    """Add ``ember models`` to ``app``."""
    app.add_typer(models_app, name="models")
