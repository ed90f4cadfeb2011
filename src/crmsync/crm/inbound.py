"""Storing what the incoming engine decided: one email activity per message, linked to
every mailbox that saw it.

The engine (crmsync.sync.incoming) decides — with crmsync.tracking — what to track,
against which record and with which parties; this module only writes. It acts for the
mailbox's owner (a system process, not a request), so it checks no rights, and it never
talks to a mail server.

"One message, one activity" is a database constraint (``email_keys``): when two
mailboxes store the same message at the same time, one insert wins and the other links
to the winner's activity. A key with no activity is a message a person untracked: it is
never stored again unless a person tracks it by hand (who removes the key first).

    store_emails(batch)
        ├─ bulk: a few INSERT statements for the whole batch (the common case)
        └─ a key was stored meanwhile (IntegrityError, rolled back to a savepoint):
           row by row — insert, or link to the email holding the key, or leave out a
           message untracked meanwhile; an email correlated with an earlier row of the
           batch follows that row to the email it became

Every field of ``InboundEmail`` becomes a column in ``_rows``, the one mapping both ways
share.

A Message-ID is the key only while the content agrees: a different message reusing a
tracked email's Message-ID (``content_fingerprint`` differs) is keyed by
``collision_key`` instead, so it is its own email — and its copies in other mailboxes
still fold into that one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.email_keys import collision_key
from crmsync.core.fingerprints import same_content
from crmsync.core.types import (
    ActivityState,
    CorrelationMethod,
    Direction,
    EmailStatus,
    Participation,
    RecordType,
)
from crmsync.core.why import Why
from crmsync.crm.db import table_of
from crmsync.crm.models.activities import Activity, ActivityParty, Attachment, Email
from crmsync.crm.models.sync_state import EmailKey, QueueItem


@dataclass(frozen=True)
class PartyRow:
    participation: Participation
    address: str | None
    display_name: str = ""
    record_type: RecordType | None = None
    record_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AttachmentRow:
    """An attachment whose blob is stored already (file written, row added)."""

    filename: str
    content_type: str
    sha256: str
    size: int
    content_id: str | None = None


@dataclass(frozen=True)
class InboundEmail:
    organisation_id: uuid.UUID
    owner_id: uuid.UUID
    owning_business_unit_id: uuid.UUID
    dedupe_key: str
    subject: str
    description: str  # sanitized HTML, safe to show
    body_text: str
    occurred_at: datetime
    message_id: str | None
    in_reply_to: str | None
    references: str | None
    conversation_index: str | None
    conversation_guid: str | None
    normalised_subject: str
    tracking_token: str | None
    correlation_method: CorrelationMethod
    regarding: tuple[RecordType, uuid.UUID] | None
    parties: list[PartyRow] = field(default_factory=list)
    attachments: list[AttachmentRow] = field(default_factory=list)
    queue_id: uuid.UUID | None = None
    defects: tuple[str, ...] = ()  # the parser's, for Email.parse_defects
    # The tracked email correlation matched, for Email.correlated_with_id.
    correlated_with: uuid.UUID | None = None
    # crmsync.tracking.fingerprint of the message; None when unknown.
    content_fingerprint: str | None = None
    # Why it was tracked (crmsync.tracking.decide), for Email.why.
    why: Why | None = None


@dataclass(frozen=True)
class NewEmail:
    """An email to store as ``email_id``, and the SHA-256 of its raw message (stored)."""

    email_id: uuid.UUID
    inbound: InboundEmail
    raw_sha256: str


@dataclass(frozen=True)
class Stored:
    """Where a ``NewEmail`` went: its own id (``created``), the email that held its key
    already, or None when a person untracked the message meanwhile."""

    email_id: uuid.UUID | None
    created: bool


@dataclass
class _Rows:
    activity: dict[str, Any]
    email: dict[str, Any]
    key: dict[str, Any]
    parties: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    queued: list[dict[str, Any]]


def store_emails(session: Session, emails: Sequence[NewEmail]) -> list[Stored]:
    """Store ``emails``, one ``Stored`` each, in order.

    The blobs they refer to — raw messages and attachments — must be stored already
    (their rows added; their files durable before the commit). Runs in the caller's
    transaction; what it writes is rolled back to a savepoint when a key turns out to be
    taken, then written row by row.
    """
    if not emails:
        return []
    try:
        with session.begin_nested():
            _insert(session, [_rows(email) for email in emails])
        return [Stored(email.email_id, True) for email in emails]
    except IntegrityError:
        pass  # another worker stored some of these messages meanwhile
    renamed: dict[uuid.UUID, uuid.UUID | None] = {}
    stored: list[Stored] = []
    for email in emails:
        inbound = _relinked(session, email.inbound, renamed)
        outcome = _store_one(session, replace(email, inbound=inbound))
        renamed[email.email_id] = outcome.email_id
        stored.append(outcome)
    return stored


def _store_one(session: Session, email: NewEmail) -> Stored:
    inbound = email.inbound
    holder = _key_row(session, inbound)
    if holder is None:
        try:
            with session.begin_nested():
                _insert(session, [_rows(email)])
            return Stored(email.email_id, True)
        except IntegrityError:
            holder = _key_row(session, inbound)  # the winner of a race for the key
            if holder is None:
                raise
    found_id = holder.email_id
    if found_id is None:  # a tombstone: a person untracked the message
        return Stored(None, False)
    fingerprint = session.scalar(select(Email.content_fingerprint).where(Email.id == found_id))
    if (rekeyed := _collision(found_id, fingerprint, inbound)) is not None:
        return _store_one(session, replace(email, inbound=rekeyed))
    add_to_queue(session, inbound.queue_id, found_id)
    return Stored(found_id, False)


def _key_row(session: Session, inbound: InboundEmail) -> Row[uuid.UUID | None] | None:
    """The key's row (its ``email_id`` None for a tombstone), or None."""
    return session.execute(
        select(EmailKey.email_id).where(
            EmailKey.organisation_id == inbound.organisation_id,
            EmailKey.key == inbound.dedupe_key,
        )
    ).first()


def _collision(
    found_id: uuid.UUID, found_fingerprint: str | None, inbound: InboundEmail
) -> InboundEmail | None:
    """``inbound`` re-keyed by ``collision_key`` when the email holding its Message-ID
    key is another message; None when it is the same message."""
    if (
        inbound.message_id is None
        or inbound.content_fingerprint is None
        or inbound.dedupe_key != inbound.message_id
        or same_content(found_fingerprint, inbound.content_fingerprint)
    ):
        return None
    key = collision_key(inbound.message_id, inbound.content_fingerprint)
    why = replace(inbound.why, collides_with=found_id) if inbound.why is not None else None
    return replace(inbound, dedupe_key=key, why=why)


def _relinked(
    session: Session, inbound: InboundEmail, renamed: dict[uuid.UUID, uuid.UUID | None]
) -> InboundEmail:
    """``inbound`` correlated with the email an earlier row of its batch became (its
    planned id was taken by another worker's copy); the link is left out when that
    email is gone (deleted meanwhile, or its message untracked)."""
    planned = inbound.correlated_with
    if planned is None:
        return inbound
    target = renamed.get(planned, planned)
    if target is not None:
        target = session.scalar(select(Email.id).where(Email.id == target))
    if target == planned:
        return inbound
    why = inbound.why
    if why is not None and why.correlation is not None and target is not None:
        why = replace(why, correlation=replace(why.correlation, email_id=target))
    return replace(inbound, correlated_with=target, why=why)


def _rows(email: NewEmail) -> _Rows:
    """The rows of one email: every field of ``InboundEmail`` has its column here."""
    inbound, email_id = email.inbound, email.email_id
    regarding_type, regarding_id = inbound.regarding or (None, None)
    return _Rows(
        activity={
            "id": email_id,
            "activity_type": RecordType.EMAIL,
            "organisation_id": inbound.organisation_id,
            "owner_id": inbound.owner_id,
            "owning_business_unit_id": inbound.owning_business_unit_id,
            "subject": inbound.subject[:400],
            "description": inbound.description,
            "regarding_type": regarding_type,
            "regarding_id": regarding_id,
            "state": ActivityState.COMPLETED,
            "direction": Direction.INCOMING,
            "actual_start": inbound.occurred_at,
            "actual_end": inbound.occurred_at,
            "occurred_at": inbound.occurred_at,
        },
        email={
            "id": email_id,
            "status": EmailStatus.RECEIVED,
            "body_text": inbound.body_text,
            "message_id": inbound.message_id,
            "in_reply_to": inbound.in_reply_to,
            "references": inbound.references,
            "conversation_index": inbound.conversation_index,
            "conversation_guid": inbound.conversation_guid,
            "normalised_subject": inbound.normalised_subject[:400] or None,
            "tracking_token": inbound.tracking_token,
            "correlation_method": inbound.correlation_method,
            "correlated_with_id": inbound.correlated_with,
            "delivery_attempts": 0,
            "raw_sha256": email.raw_sha256,
            "parse_defects": list(inbound.defects),
            "content_fingerprint": inbound.content_fingerprint,
            "why": inbound.why.as_json() if inbound.why is not None else None,
        },
        key={
            "organisation_id": inbound.organisation_id,
            "key": inbound.dedupe_key,
            "email_id": email_id,
        },
        parties=[
            {
                "id": uuid.uuid4(),
                "activity_id": email_id,
                "position": position,
                "participation": party.participation,
                "party_type": party.record_type,
                "party_id": party.record_id,
                "address": party.address,
                "display_name": party.display_name[:300],
            }
            for position, party in enumerate(inbound.parties)
        ],
        attachments=[
            {
                "id": uuid.uuid4(),
                "activity_id": email_id,
                "blob_sha256": attachment.sha256,
                "filename": attachment.filename[:400],
                "content_type": attachment.content_type[:200],
                "size": attachment.size,
                "content_id": attachment.content_id,
            }
            for attachment in inbound.attachments
        ],
        queued=(
            [{"id": uuid.uuid4(), "queue_id": inbound.queue_id, "activity_id": email_id}]
            if inbound.queue_id is not None
            else []
        ),
    )


def _insert(session: Session, rows: Sequence[_Rows]) -> None:
    """One INSERT per table for all of ``rows``; IntegrityError when a key is taken."""
    session.execute(insert(table_of(Activity)), [row.activity for row in rows])
    session.execute(insert(table_of(Email)), [row.email for row in rows])
    session.execute(insert(table_of(EmailKey)), [row.key for row in rows])
    for table, values in (
        (ActivityParty, [party for row in rows for party in row.parties]),
        (Attachment, [attachment for row in rows for attachment in row.attachments]),
        (QueueItem, [item for row in rows for item in row.queued]),
    ):
        if values:
            session.execute(insert(table_of(table)), values)


def add_to_queue(session: Session, queue_id: uuid.UUID | None, activity_id: uuid.UUID) -> None:
    """``activity_id`` in ``queue_id`` (no-op without a queue, or when it is there)."""
    if queue_id is None:
        return
    exists = session.scalar(
        select(QueueItem.id).where(
            QueueItem.queue_id == queue_id, QueueItem.activity_id == activity_id
        )
    )
    if exists is None:
        session.add(QueueItem(queue_id=queue_id, activity_id=activity_id))
