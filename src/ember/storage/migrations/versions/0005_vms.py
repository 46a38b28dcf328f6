"""VMs: one row per throwaway VM, moved along the lifecycle's edges.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "vms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=128), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("accel", sa.String(length=8), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("disk_mib", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vms")),
    )
    with op.batch_alter_table("vms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vms_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vms_state_node"), ["state", "node"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vms_state_node"))
        batch_op.drop_index(batch_op.f("ix_vms_job_id"))
    op.drop_table("vms")
