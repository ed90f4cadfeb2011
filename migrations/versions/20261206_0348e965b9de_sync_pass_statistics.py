"""Pass statistics: one row per sync pass of a mailbox channel, for the dashboard.

A new table only; nothing stored before is touched.

Revision ID: 0348e965b9de
Revises: 8d51d1068832
Create Date: 2026-12-06 17:27:58
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmsync.crm.db

revision: str = "0348e965b9de"
down_revision: str | None = "8d51d1068832"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_passes",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("mailbox_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("incoming", "outgoing", "act", name="channel", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("started_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("tracked", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=True),
        sa.Column("push_latency_seconds", sa.Float(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_sync_passes_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sync_passes_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["email_server_profiles.id"],
            name=op.f("fk_sync_passes_profile_id_email_server_profiles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_passes")),
    )
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_passes_mailbox_started", ["mailbox_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_sync_passes_org_hour", ["organisation_id", "hour"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_passes_org_hour")
        batch_op.drop_index("ix_sync_passes_mailbox_started")

    op.drop_table("sync_passes")
