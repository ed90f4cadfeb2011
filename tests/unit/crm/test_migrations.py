"""Upgrading a database that already holds an organisation, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text

from crmsync.core.types import Channel, RecordType
from crmsync.crm.models import Mailbox, MailboxChannel, RolePrivilege
from crmsync.crm.store import Store

FIRST_REVISION = "7e23069821ac"


def test_upgrade_gives_existing_users_a_mailbox_and_admins_the_new_rights(
    empty_store: Store,
) -> None:
    empty_store.migrate(FIRST_REVISION)
    org, unit, user, role = (uuid.uuid4() for _ in range(4))
    now = datetime.now(UTC).isoformat()
    with empty_store.engine.begin() as connection:
        params = {"org": org, "unit": unit, "user": user, "role": role, "now": now}
        if connection.dialect.name == "sqlite":
            params = {k: (v.hex if isinstance(v, uuid.UUID) else v) for k, v in params.items()}
        for statement in (
            "INSERT INTO organisations (id, name, settings, created_at, modified_at) "
            "VALUES (:org, 'Old', '{}', :now, :now)",
            "INSERT INTO business_units (id, organisation_id, name, created_at, modified_at) "
            "VALUES (:unit, :org, 'Old', :now, :now)",
            "INSERT INTO users (id, organisation_id, business_unit_id, username, full_name, "
            "is_active, created_at, modified_at) "
            "VALUES (:user, :org, :unit, 'old-admin', 'Old Admin', true, :now, :now)",
            "INSERT INTO security_roles (id, organisation_id, name, description, created_at, "
            "modified_at) VALUES (:role, :org, 'System Administrator', '', :now, :now)",
        ):
            connection.execute(text(statement), params)
    empty_store.migrate()
    with empty_store.transaction() as session:
        mailbox = session.scalars(select(Mailbox)).one()
        assert mailbox.user_id == user
        assert {c.channel for c in session.scalars(select(MailboxChannel))} == set(Channel)
        granted = {
            (g.record_type, g.privilege.value)
            for g in session.scalars(select(RolePrivilege).where(RolePrivilege.role_id == role))
        }
        assert (RecordType.MAILBOX, "write") in granted
        assert (RecordType.EMAIL_SERVER_PROFILE, "create") in granted
