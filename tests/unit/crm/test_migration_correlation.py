"""Upgrading a database that holds tracked email to correlation links and tombstones,
on both backends: every email and key stays, and the new columns work at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text

from crmsync.crm.models import Email, EmailKey
from crmsync.crm.store import Store

BEFORE = "64bdb35bc00f"


def test_upgrade_keeps_tracked_email_and_allows_links_and_tombstones(
    empty_store: Store,
) -> None:
    empty_store.migrate(BEFORE)
    org, unit, user, first, reply = (uuid.uuid4() for _ in range(5))
    now = datetime.now(UTC).isoformat()
    with empty_store.engine.begin() as connection:
        params = {
            "org": org,
            "unit": unit,
            "user": user,
            "first": first,
            "reply": reply,
            "now": now,
        }
        if connection.dialect.name == "sqlite":
            params = {k: (v.hex if isinstance(v, uuid.UUID) else v) for k, v in params.items()}
        statements = [
            "INSERT INTO organisations (id, name, settings, created_at, modified_at) "
            "VALUES (:org, 'Old', '{}', :now, :now)",
            "INSERT INTO business_units (id, organisation_id, name, created_at, modified_at) "
            "VALUES (:unit, :org, 'Old', :now, :now)",
            "INSERT INTO users (id, organisation_id, business_unit_id, username, full_name, "
            "is_active, settings, created_at, modified_at) "
            "VALUES (:user, :org, :unit, 'ann', 'Ann', true, '{}', :now, :now)",
        ]
        for email, message_id in (("first", "<a@x.test>"), ("reply", "<b@x.test>")):
            statements += [
                "INSERT INTO activities (id, activity_type, organisation_id, owner_id, "
                "owning_business_unit_id, subject, description, state, occurred_at, "
                f"created_at, modified_at) VALUES (:{email}, 'email', :org, :user, :unit, "
                f"'{email}', '', 'completed', :now, :now, :now)",
                "INSERT INTO emails (id, status, message_id, correlation_method, "
                "delivery_attempts, body_text, maybe_sent, copy_pending, parse_defects) "
                f"VALUES (:{email}, 'received', '{message_id}', 'none', 0, '', false, false, "
                "'[]')",
                "INSERT INTO email_keys (organisation_id, key, email_id) "
                f"VALUES (:org, '{message_id}', :{email})",
            ]
        for statement in statements:
            connection.execute(text(statement), params)
    empty_store.migrate()
    with empty_store.transaction() as session:
        emails = {e.subject: e for e in session.scalars(select(Email))}
        assert {subject: e.correlated_with_id for subject, e in emails.items()} == {
            "first": None,
            "reply": None,
        }
        emails["reply"].correlated_with_id = first
        keys = {k.key: k for k in session.scalars(select(EmailKey))}
        assert {key: k.email_id for key, k in keys.items()} == {
            "<a@x.test>": first,
            "<b@x.test>": reply,
        }
        keys["<a@x.test>"].email_id = None
        keys["<a@x.test>"].untracked_by_id = user
        keys["<a@x.test>"].untracked_at = datetime.now(UTC)
    with empty_store.transaction() as session:
        session.delete(session.get(Email, first))
    with empty_store.transaction() as session:
        kept = session.get(Email, reply)
        assert kept is not None
        assert kept.correlated_with_id is None  # the link is cleared, the reply kept
        tombstone = session.get(EmailKey, (org, "<a@x.test>"))
        assert tombstone is not None  # the delete cascaded to no tombstone
        assert tombstone.untracked_by_id == user
