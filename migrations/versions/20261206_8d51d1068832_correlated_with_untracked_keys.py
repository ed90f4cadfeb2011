"""Emails link to the email they were correlated with; untracked messages leave a tombstone.

Additive for data already stored: a nullable column (with its index and foreign key) on
emails; on email_keys a nullable email_id, who untracked a message and when, and a check
that a key is either tracked or untracked. Every existing key is a tracked one.

Revision ID: 8d51d1068832
Revises: 64bdb35bc00f
Create Date: 2026-12-06 16:07:17
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmsync.crm.db

revision: str = "8d51d1068832"
down_revision: str | None = "64bdb35bc00f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("untracked_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("untracked_by_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("email_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index(batch_op.f("ix_email_keys_email_id"), ["email_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_email_keys_untracked_by_id_users"),
            "users",
            ["untracked_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            "tracked_or_untracked", "email_id IS NOT NULL OR untracked_at IS NOT NULL"
        )

    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correlated_with_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_emails_correlated_with_id"), ["correlated_with_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_emails_correlated_with_id_emails"),
            "emails",
            ["correlated_with_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_emails_correlated_with_id_emails"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_emails_correlated_with_id"))
        batch_op.drop_column("correlated_with_id")

    # Tombstones cannot be expressed before this revision: those messages may be tracked
    # again after a downgrade.
    op.execute("DELETE FROM email_keys WHERE email_id IS NULL")
    with op.batch_alter_table("email_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_email_keys_tracked_or_untracked"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_email_keys_untracked_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_email_keys_email_id"))
        batch_op.alter_column("email_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("untracked_by_id")
        batch_op.drop_column("untracked_at")
