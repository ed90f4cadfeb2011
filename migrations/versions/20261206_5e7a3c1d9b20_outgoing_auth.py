"""Email server profiles say how crmsync authenticates to their SMTP server.

``same_as_incoming`` (every existing profile: AUTH as before) or ``none``, for an
on-premises relay that accepts mail from trusted addresses without AUTH.

Revision ID: 5e7a3c1d9b20
Revises: c4f1e2a9b7d3
Create Date: 2026-12-06 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e7a3c1d9b20"
down_revision: str | None = "c4f1e2a9b7d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_server_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "outgoing_auth",
                sa.Enum(
                    "same_as_incoming",
                    "none",
                    name="outgoingauth",
                    native_enum=False,
                    create_constraint=False,
                    length=32,
                ),
                server_default="same_as_incoming",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("email_server_profiles", schema=None) as batch_op:
        batch_op.drop_column("outgoing_auth")
