"""Emails keep why they were tracked as data: the rule and what it matched.

NULL for every email stored before (their mailbox ledger rows say why in words).

Revision ID: 3b9e5d2c7a41
Revises: 5e7a3c1d9b20
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b9e5d2c7a41"
down_revision: str | None = "5e7a3c1d9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("why", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_column("why")
