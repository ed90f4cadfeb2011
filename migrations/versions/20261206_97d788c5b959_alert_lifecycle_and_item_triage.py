"""Alerts have a life (open, acknowledged, dismissed, resolved); item failures a triage.

Additive for data already stored: every existing alert is open and resolves only by
hand (no cause); on item failures, how one was resolved, by whom, and the email it
became. Existing resolved failures keep their time without a resolution.

Revision ID: 97d788c5b959
Revises: 0348e965b9de
Create Date: 2026-12-06 17:28:36.109461
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmsync.crm.db

revision: str = "97d788c5b959"
down_revision: str | None = "0348e965b9de"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "state",
                sa.Enum(
                    "open",
                    "acknowledged",
                    "dismissed",
                    "resolved",
                    name="alertstate",
                    native_enum=False,
                    length=32,
                ),
                server_default=sa.text("'open'"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "cause",
                sa.Enum(
                    "channel_failing",
                    "profile_failing",
                    name="alertcause",
                    native_enum=False,
                    length=32,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("acknowledged_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("dismissed_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("dismissed_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("resolution", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_acknowledged_by_id_users"),
            "users",
            ["acknowledged_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_dismissed_by_id_users"),
            "users",
            ["dismissed_by_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("item_failures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "resolution",
                sa.Enum(
                    "tracked",
                    "processed",
                    "ignored",
                    name="itemresolution",
                    native_enum=False,
                    length=32,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("resolved_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("email_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_item_failures_email_id_emails"),
            "emails",
            ["email_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_item_failures_resolved_by_id_users"),
            "users",
            ["resolved_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("item_failures", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_item_failures_resolved_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_item_failures_email_id_emails"), type_="foreignkey")
        batch_op.drop_column("email_id")
        batch_op.drop_column("resolved_by_id")
        batch_op.drop_column("resolution")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_dismissed_by_id_users"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_alerts_acknowledged_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("resolution")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("dismissed_at")
        batch_op.drop_column("dismissed_by_id")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("acknowledged_by_id")
        batch_op.drop_column("cause")
        batch_op.drop_column("state")
