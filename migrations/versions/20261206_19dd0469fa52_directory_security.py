"""Directory security: per-organisation usernames, the system role, login throttles.

Usernames become unique per organisation (a conflict no longer reveals another
organisation's users); the built-in System Administrator role is marked so it cannot be
edited; failed logins are counted per account and per client address.

Revision ID: 19dd0469fa52
Revises: e54259779587
Create Date: 2026-12-06 13:28:31.867567
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crmsync.crm.db

revision: str = "19dd0469fa52"
down_revision: str | None = "e54259779587"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEM_ADMINISTRATOR = "System Administrator"


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", crmsync.crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", crmsync.crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index(
        op.f("ix_login_throttles_last_failure_at"), "login_throttles", ["last_failure_at"]
    )
    with op.batch_alter_table("security_roles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_system", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    roles = sa.table("security_roles", sa.column("name", sa.String), sa.column("is_system"))
    op.execute(
        roles.update().where(roles.c.name == SYSTEM_ADMINISTRATOR).values(is_system=sa.true())
    )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_username"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_organisation_id_username"), ["organisation_id", "username"]
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_organisation_id_username"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_users_username"), ["username"])

    with op.batch_alter_table("security_roles", schema=None) as batch_op:
        batch_op.drop_column("is_system")

    op.drop_index(op.f("ix_login_throttles_last_failure_at"), table_name="login_throttles")
    op.drop_table("login_throttles")
