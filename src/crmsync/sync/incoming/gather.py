"""What the database knows that decides a batch of incoming messages, in a handful of
queries: the ``Known`` that crmsync.tracking.decide decides from.

    keys       which of the batch's keys are stored (with their email's content
               fingerprint) or untracked by a person (with that person's name); then the
               collision keys of messages reusing a stored Message-ID with other content
    candidates tracked emails by the Message-IDs the batch names (In-Reply-To,
               References), by tracking token, conversation GUID and normalised subject
    matches    the records carrying any of the batch's addresses, with their active flags

One query per kind for the whole batch (chunked under the database's parameter limits):
per-message round trips cost more than everything else together (bench/ingest.py).
Runs in the caller's transaction; only reads. Must never decide anything: what the rows
mean is tracking/'s to say.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import RecordState, RecordType
from crmsync.crm import addresses
from crmsync.crm.db import table_of
from crmsync.crm.models.activities import ActivityParty, Email
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.sync_state import EmailKey
from crmsync.crm.records import RECORD_MODELS
from crmsync.tracking.correlate import CorrelationSettings, KnownEmail, participants, wanted_keys
from crmsync.tracking.decide import Known, Message, StoredKey, dedupe_key, identify
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.parties import RecordRef

KNOWN_COLUMNS = (
    Email.id,
    Email.message_id,
    Email.regarding_type,
    Email.regarding_id,
    Email.conversation_guid,
    Email.tracking_token,
    Email.normalised_subject,
    Email.occurred_at,
)


def gather(
    session: Session,
    organisation_id: uuid.UUID,
    settings: CorrelationSettings,
    messages: Sequence[Message],
) -> Known:
    """Everything the decisions of ``messages`` need, in a handful of queries."""
    known = Known()
    _gather_keys(session, organisation_id, [dedupe_key(message) for message in messages], known)
    # Messages reusing a stored email's Message-ID with other content (rare): their own
    # keys, so that a copy seen in another mailbox before links to that copy's email.
    collisions = [
        identity.key
        for message in messages
        if (identity := identify(message, known)).collides_with is not None
    ]
    _gather_keys(session, organisation_id, collisions, known)
    wanted = [wanted_keys(message.parsed, settings) for message in messages]
    message_ids = {mid for keys in wanted for mid in keys.message_ids}
    tokens = {keys.token for keys in wanted if keys.token}
    conversations = {keys.conversation_guid for keys in wanted if keys.conversation_guid}
    subjects = {keys.normalised_subject[:400] for keys in wanted if keys.normalised_subject}
    in_org = Email.organisation_id == organisation_id
    for column, values in (
        (Email.message_id, message_ids),
        (Email.tracking_token, tokens),
        (Email.conversation_guid, conversations),
        (Email.normalised_subject, subjects),
    ):
        for chunk in _chunks(sorted(values)):
            found = session.execute(
                select(*KNOWN_COLUMNS).where(in_org, column.in_(chunk)).order_by(Email.occurred_at)
            )
            for email in _known(session, found):
                known.learn(email)
    every_address = {address for message in messages for address in _addresses(message.parsed)}
    known.matches = gather_matches(session, organisation_id, sorted(every_address))
    return known


def gather_matches(
    session: Session, organisation_id: uuid.UUID, wanted: Sequence[str]
) -> dict[str, list[RecordRef]]:
    """Records carrying each address, with their active flags: one query per type."""
    found = addresses.lookup(session, organisation_id, wanted)
    ids_by_type: dict[RecordType, set[uuid.UUID]] = {}
    for keys in found.values():
        for record_type, record_id in keys:
            ids_by_type.setdefault(record_type, set()).add(record_id)
    models: dict[RecordType, Any] = {
        RecordType.USER: User,
        RecordType.QUEUE: Queue,
        **RECORD_MODELS,
    }
    active: dict[tuple[RecordType, uuid.UUID], bool] = {}
    for record_type, ids in ids_by_type.items():
        model = models[record_type]
        flag = (
            model.is_active if record_type in (RecordType.USER, RecordType.QUEUE) else model.state
        )
        for record_id, value in session.execute(select(model.id, flag).where(model.id.in_(ids))):
            active[(record_type, record_id)] = value is True or value is RecordState.ACTIVE
    return {
        address: [
            RecordRef(record_type, record_id, active[(record_type, record_id)])
            for record_type, record_id in keys
            if (record_type, record_id) in active
        ]
        for address, keys in found.items()
    }


def _gather_keys(
    session: Session, organisation_id: uuid.UUID, keys: Sequence[str], known: Known
) -> None:
    """Which of ``keys`` are stored (with their email's fingerprint) or untracked."""
    emails = table_of(Email)
    for chunk in _chunks(keys):
        rows = session.execute(
            select(
                EmailKey.key,
                EmailKey.email_id,
                User.full_name,
                User.username,
                emails.c.content_fingerprint,
            )
            .outerjoin(User, User.id == EmailKey.untracked_by_id)
            .outerjoin(emails, emails.c.id == EmailKey.email_id)
            .where(EmailKey.organisation_id == organisation_id, EmailKey.key.in_(chunk))
        )
        for key, email_id, full_name, username, content in rows:
            if email_id is not None:
                known.stored[key] = StoredKey(email_id, content)
            else:
                known.untracked[key] = full_name or username


def _known(session: Session, rows: Iterable[Any]) -> list[KnownEmail]:
    """KnownEmails from ``KNOWN_COLUMNS`` rows — plain columns, never ORM entities,
    which would drag in every email's parties and attachments."""
    rows = list(rows)
    if not rows:
        return []
    addresses_of: dict[uuid.UUID, list[str]] = {row.id: [] for row in rows}
    parties = session.execute(
        select(ActivityParty.activity_id, ActivityParty.address).where(
            ActivityParty.activity_id.in_(addresses_of)
        )
    )
    for activity_id, address in parties:
        if address:
            addresses_of[activity_id].append(address)
    return [
        KnownEmail(
            activity_id=row.id,
            message_id=row.message_id,
            regarding=(row.regarding_type, row.regarding_id)
            if row.regarding_type is not None and row.regarding_id is not None
            else None,
            participants=participants(addresses_of[row.id]),
            conversation_guid=row.conversation_guid,
            tracking_token=row.tracking_token,
            normalised_subject=row.normalised_subject or "",
            occurred_at=row.occurred_at,
        )
        for row in rows
    ]


def _addresses(parsed: ParsedMessage) -> list[str]:
    return [
        entry.address
        for group in (parsed.from_, parsed.to, parsed.cc, parsed.bcc)
        for entry in group
    ]


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
