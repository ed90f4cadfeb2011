"""Emails keep a fingerprint of their content, to tell a reused Message-ID from a copy.

Existing emails keep NULL ("unknown"): for them the Message-ID alone decides, as before.

Revision ID: c4f1e2a9b7d3
Revises: 97d788c5b959
Create Date: 2026-12-06 17:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f1e2a9b7d3"
down_revision: str | None = "97d788c5b959"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_fingerprint", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_column("content_fingerprint")
