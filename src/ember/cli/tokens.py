"""``ember tokens create|list|revoke`` and ``ember workspaces create|list``, on the local
database.

Each create and revoke, done or failed, is written to ``audit_log`` with the actor ``cli``.
A created token's secret is printed once, alone on stdout (so ``$(ember tokens create ...)``
captures it); everything else goes to stderr.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from ember.auth import DEFAULT_WORKSPACE, Scope, SqlTokenRepository
from ember.cli.common import ConfigOption, console, load, notes, open_services, reported
from ember.storage import SqlAuditLog, TokenRecord, audited
from ember.storage.clock import utcnow

__all__ = ["CLI_ACTOR", "register", "tokens_app"]

CLI_ACTOR = "cli"
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
workspaces_app = typer.Typer(
    help="Create and list workspaces (tenants of tokens, collections and jobs).",
    no_args_is_help=True,
)


def _when(moment: datetime | None, empty: str = "-") -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else empty


@tokens_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="What the token is for (shown in `list`).")],
    scopes: Annotated[
        list[Scope],
        typer.Option(
            "--scope",
            "-s",
            help="A scope to grant; repeat for more (admin: all in its workspace; "
            "cluster:admin: all in every workspace).",
        ),
    ],
    principal: Annotated[
        str | None, typer.Option(help="Who the token acts as (default: NAME).")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days (default: never).")
    ] = None,
    workspace: Annotated[
        str, typer.Option(help="The workspace the token (and its principal) belongs to.")
    ] = DEFAULT_WORKSPACE,
    config_path: ConfigOption = None,
) -> None:
    """Create a token and print its secret, once."""
    who = principal or name
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None

    def work(tokens: SqlTokenRepository, audit: SqlAuditLog) -> tuple[TokenRecord, str]:
        with audited(audit, CLI_ACTOR, "token.create", "token") as draft:
            draft.detail.update(
                name=name, principal=who, scopes=sorted(scopes), workspace=workspace
            )
            record, plaintext = tokens.create(name, who, scopes, expires_at, workspace)
            draft.resource = f"token:{record.id}"
        return record, plaintext

    with reported(), open_services(load(config_path), migrate=True) as services:
        record, plaintext = work(services.tokens, services.audit)
    notes.print(
        f"created token {record.id} ({record.name!r}) for principal {record.principal!r} "
        f"in workspace {record.workspace!r}, "
        f"scopes {', '.join(record.scopes)}, expires {_when(record.expires_at, 'never')}",
        highlight=False,
    )
    notes.print(
        "[yellow]warning:[/] this is the only time the token is shown; ember keeps only its "
        "hash. Send it as `Authorization: Bearer <token>`.",
        highlight=False,
    )
    console.print(plaintext, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def list_tokens(config_path: ConfigOption = None) -> None:
    """List every token (never its secret or hash)."""
    with reported(), open_services(load(config_path), migrate=True) as services:
        records = services.tokens.list()
    now = utcnow()
    table = Table(
        "id",
        "name",
        "principal",
        "workspace",
        "scopes",
        "created",
        "expires",
        "revoked",
        "last used",
    )
    for record in records:
        expires = _when(record.expires_at, "never")
        if record.expires_at is not None and record.expires_at <= now:
            expires += " (expired)"
        table.add_row(
            record.id,
            record.name,
            record.principal,
            record.workspace,
            " ".join(record.scopes),
            _when(record.created_at),
            expires,
            _when(record.revoked_at),
            _when(record.last_used_at, "never"),
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The id `list` shows.")],
    config_path: ConfigOption = None,
) -> None:
    """Revoke a token; it stops working at once. Revoking it again changes nothing."""

    def work(tokens: SqlTokenRepository, audit: SqlAuditLog) -> tuple[TokenRecord, bool]:
        with audited(audit, CLI_ACTOR, "token.revoke", f"token:{token_id}") as draft:
            before = utcnow()
            record = tokens.revoke(token_id)
            already = record.revoked_at is not None and record.revoked_at < before
            draft.detail.update(name=record.name, already_revoked=already)
        return record, already

    with reported(), open_services(load(config_path), migrate=True) as services:
        record, already = work(services.tokens, services.audit)
    if already:
        console.print(f"token {record.id} was already revoked at {_when(record.revoked_at)}")
    else:
        console.print(f"revoked token {record.id} ({record.name!r})", highlight=False)


@workspaces_app.command("create")
def create_workspace(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, `_`, `-`.")],
    config_path: ConfigOption = None,
) -> None:
    """Create a workspace; give it tokens with `ember tokens create --workspace NAME`."""
    with (
        reported(),
        open_services(load(config_path), migrate=True) as services,
        audited(services.audit, CLI_ACTOR, "workspace.create", f"workspace:{name}"),
    ):
        record = services.workspaces.create(name)
    console.print(f"created workspace {record.name!r}", highlight=False)


@workspaces_app.command("list")
def list_workspaces(config_path: ConfigOption = None) -> None:
    """List the workspaces."""
    with reported(), open_services(load(config_path), migrate=True) as services:
        records = services.workspaces.list()
    table = Table("name", "created")
    for record in records:
        table.add_row(record.name, _when(record.created_at))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``ember tokens`` and ``ember workspaces`` to ``app``."""
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(workspaces_app, name="workspaces")
