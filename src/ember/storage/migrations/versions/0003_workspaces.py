"""Workspaces: every token, collection, job, usage and audit row belongs to one.

Existing rows move to ``default``. Collection names become unique per workspace, and a job
remembers the token that submitted it (its worker checks that token again when it runs).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNED = ("api_tokens", "jobs", "collections", "audit_log", "usage")


def _workspace() -> sa.Column[str]:
    return sa.Column("workspace", sa.String(length=64), nullable=False, server_default="default")


def upgrade() -> None:
    workspaces = op.create_table(
        "workspaces",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workspaces")),
    )
    op.bulk_insert(workspaces, [{"name": "default", "created_at": datetime.now(UTC)}])
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_workspace())
            if table == "jobs":
                batch.add_column(sa.Column("token_id", sa.String(length=32), nullable=True))
            if table == "collections":
                batch.drop_constraint(op.f("uq_collections_name"), type_="unique")
                batch.create_unique_constraint(
                    op.f("uq_collections_workspace_name"), ["workspace", "name"]
                )


def downgrade() -> None:
    for table in reversed(_OWNED):
        with op.batch_alter_table(table) as batch:
            if table == "collections":
                batch.drop_constraint(op.f("uq_collections_workspace_name"), type_="unique")
                batch.create_unique_constraint(op.f("uq_collections_name"), ["name"])
            if table == "jobs":
                batch.drop_column("token_id")
            batch.drop_column("workspace")
    op.drop_table("workspaces")
