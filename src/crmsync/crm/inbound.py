"""Storing what the incoming engine decided: one email activity per message, linked to
every mailbox that saw it.

The engine (crmsync.sync.incoming) decides — with crmsync.tracking — what to track,
against which record and with which parties; this module only writes. It acts for the
mailbox's owner (a system process, not a request), so it checks no rights, and it never
talks to a mail server.

"One message, one activity" is a database constraint (``email_keys``): when two
mailboxes store the same message at the same time, one insert wins and the other links
to the winner's activity. A key with no activity is a message a person untracked: it is
never stored again (``MessageUntracked``) unless a person tracks it by hand.

A Message-ID is the key only while the content agrees: a different message reusing a
tracked email's Message-ID (``content_fingerprint`` differs) is keyed by
``collision_key`` instead, so it is its own email — and its copies in other mailboxes
still fold into that one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
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
from crmsync.crm.blobs import BlobStore
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


class MessageUntracked(Exception):
    """The message's key is a tombstone: a person untracked it; it must not come back."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _collision(found: Email, inbound: InboundEmail) -> InboundEmail | None:
    """``inbound`` re-keyed by ``collision_key`` when ``found`` (holding its Message-ID key)
    is another message; None when it is the same message."""
    if (
        inbound.message_id is None
        or inbound.content_fingerprint is None
        or inbound.dedupe_key != inbound.message_id
        or same_content(found.content_fingerprint, inbound.content_fingerprint)
    ):
        return None
    key = collision_key(inbound.message_id, inbound.content_fingerprint)
    return replace(inbound, dedupe_key=key)


def insert_emails(session: Session, emails: list[tuple[uuid.UUID, InboundEmail, str]]) -> None:
    """Insert a batch of new emails (id, what, raw SHA-256) with a few bulk statements.

    The blobs they refer to — raw messages and attachments — must be stored already
    (their rows added; their files durable before the commit).

    Raises IntegrityError when one of the dedupe keys exists already — another worker
    stored that message meanwhile; the caller then falls back to ``store_email`` one
    by one, which links instead.
    """
    if not emails:
        return
    activities: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    parties: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    queued: list[dict[str, Any]] = []
    attachment_rows: list[tuple[uuid.UUID, AttachmentRow]] = []
    for email_id, inbound, raw_sha256 in emails:
        activities.append(
            {
                "id": email_id,
                "activity_type": RecordType.EMAIL,
                "organisation_id": inbound.organisation_id,
                "owner_id": inbound.owner_id,
                "owning_business_unit_id": inbound.owning_business_unit_id,
                "subject": inbound.subject[:400],
                "description": inbound.description,
                "regarding_type": inbound.regarding[0] if inbound.regarding else None,
                "regarding_id": inbound.regarding[1] if inbound.regarding else None,
                "state": ActivityState.COMPLETED,
                "direction": Direction.INCOMING,
                "actual_start": inbound.occurred_at,
                "actual_end": inbound.occurred_at,
                "occurred_at": inbound.occurred_at,
            }
        )
        rows.append(
            {
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
                "raw_sha256": raw_sha256,
                "parse_defects": list(inbound.defects),
                "content_fingerprint": inbound.content_fingerprint,
            }
        )
        parties.extend(
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
        )
        keys.append(
            {
                "organisation_id": inbound.organisation_id,
                "key": inbound.dedupe_key,
                "email_id": email_id,
            }
        )
        if inbound.queue_id is not None:
            queued.append(
                {"id": uuid.uuid4(), "queue_id": inbound.queue_id, "activity_id": email_id}
            )
        attachment_rows.extend((email_id, attachment) for attachment in inbound.attachments)
    session.execute(insert(table_of(Activity)), activities)
    session.execute(insert(table_of(Email)), rows)
    session.execute(insert(table_of(EmailKey)), keys)
    if parties:
        session.execute(insert(table_of(ActivityParty)), parties)
    if attachment_rows:
        session.execute(
            insert(table_of(Attachment)),
            [
                {
                    "id": uuid.uuid4(),
                    "activity_id": email_id,
                    "blob_sha256": attachment.sha256,
                    "filename": attachment.filename[:400],
                    "content_type": attachment.content_type[:200],
                    "size": attachment.size,
                    "content_id": attachment.content_id,
                }
                for email_id, attachment in attachment_rows
            ],
        )
    if queued:
        session.execute(insert(table_of(QueueItem)), queued)


def existing_email(session: Session, organisation_id: uuid.UUID, key: str) -> Email | None:
    """The activity tracking the message with ``key``; None if none (or a tombstone)."""
    row = session.get(EmailKey, (organisation_id, key))
    if row is None or row.email_id is None:
        return None
    return session.get(Email, row.email_id)


def _still_there(session: Session, email_id: uuid.UUID | None) -> uuid.UUID | None:
    """``email_id`` if that email exists. The batch path links to emails it planned in
    the same batch; when it falls back to this one (another worker stored some of them
    first) those got other ids, and a correlated email may have been deleted meanwhile:
    the link is then left out rather than the message."""
    if email_id is None:
        return None
    return session.scalar(select(Email.id).where(Email.id == email_id))


def store_email(
    session: Session, blobs: BlobStore, inbound: InboundEmail, raw_sha256: str
) -> tuple[Email, bool]:
    """The activity for ``inbound``: created, or the one another mailbox already made.

    An email holding the Message-ID with other content is another message: ``inbound``
    is then stored (or found) under its ``collision_key``.

    Raises MessageUntracked when a person untracked the message meanwhile.
    """
    key_row = session.get(EmailKey, (inbound.organisation_id, inbound.dedupe_key))
    if key_row is not None and key_row.email_id is None:
        raise MessageUntracked(inbound.dedupe_key)
    found = existing_email(session, inbound.organisation_id, inbound.dedupe_key)
    if found is not None:
        if (rekeyed := _collision(found, inbound)) is not None:
            return store_email(session, blobs, rekeyed, raw_sha256)
        add_to_queue(session, inbound.queue_id, found.id)
        return found, False
    email = Email(
        organisation_id=inbound.organisation_id,
        owner_id=inbound.owner_id,
        owning_business_unit_id=inbound.owning_business_unit_id,
        subject=inbound.subject[:400],
        description=inbound.description,
        body_text=inbound.body_text,
        regarding_type=inbound.regarding[0] if inbound.regarding else None,
        regarding_id=inbound.regarding[1] if inbound.regarding else None,
        state=ActivityState.COMPLETED,
        status=EmailStatus.RECEIVED,
        direction=Direction.INCOMING,
        actual_start=inbound.occurred_at,
        actual_end=inbound.occurred_at,
        occurred_at=inbound.occurred_at,
        message_id=inbound.message_id,
        in_reply_to=inbound.in_reply_to,
        references=inbound.references,
        conversation_index=inbound.conversation_index,
        conversation_guid=inbound.conversation_guid,
        normalised_subject=inbound.normalised_subject[:400] or None,
        tracking_token=inbound.tracking_token,
        correlation_method=inbound.correlation_method,
        correlated_with_id=_still_there(session, inbound.correlated_with),
        raw_sha256=raw_sha256,
        parse_defects=list(inbound.defects),
        content_fingerprint=inbound.content_fingerprint,
    )
    email.parties = [
        ActivityParty(
            position=position,
            participation=party.participation,
            party_type=party.record_type,
            party_id=party.record_id,
            address=party.address,
            display_name=party.display_name[:300],
        )
        for position, party in enumerate(inbound.parties)
    ]
    email.attachments = [
        Attachment(
            blob_sha256=attachment.sha256,
            filename=attachment.filename[:400],
            content_type=attachment.content_type[:200],
            size=attachment.size,
            content_id=attachment.content_id,
        )
        for attachment in inbound.attachments
    ]
    try:
        with session.begin_nested():
            session.add(email)
            session.flush()
            session.add(
                EmailKey(
                    organisation_id=inbound.organisation_id,
                    key=inbound.dedupe_key,
                    email_id=email.id,
                )
            )
            session.flush()
    except IntegrityError:
        # Another worker stored the same message first: use its activity.
        winner = existing_email(session, inbound.organisation_id, inbound.dedupe_key)
        if winner is None:
            raise
        if (rekeyed := _collision(winner, inbound)) is not None:
            return store_email(session, blobs, rekeyed, raw_sha256)
        add_to_queue(session, inbound.queue_id, winner.id)
        return winner, False
    add_to_queue(session, inbound.queue_id, email.id)
    return email, True


def add_to_queue(session: Session, queue_id: uuid.UUID | None, activity_id: uuid.UUID) -> None:
    if queue_id is None:
        return
    exists = session.scalar(
        select(QueueItem.id).where(
            QueueItem.queue_id == queue_id, QueueItem.activity_id == activity_id
        )
    )
    if exists is None:
        session.add(QueueItem(queue_id=queue_id, activity_id=activity_id))
