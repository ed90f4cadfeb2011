"""What surrounds one tracked email, as a reader sees it: why it was tracked, who its
parties are, what it regards, and the other emails of its conversation.

    explain_tracking  every mailbox that saw the message and what was decided there (the
                      ledger, ``MailboxMessage``), how correlation linked it and the
                      tracked email it matched — that one only if the caller may read it —
                      and the reason it was tracked as data (``TrackingReason``, from
                      ``Email.why``; derived from its columns and ledger for an email
                      stored before reasons were kept)
    parties           each party as the record it names (linked only when the caller may
                      read it), a colleague (user, queue), or the bare address that
                      resolved to nothing
    regarding         the record it regards, when the caller may read it
    thread            the caller's readable emails of the same conversation: the emails
                      it answers (In-Reply-To, References), those answering it, and those
                      sharing its Outlook conversation (Thread-Index GUID)

The API's ``GET /emails/{id}/tracking`` and the email page both read through here.

Must never return an email or record the caller could not read (crmsync.crm.access) and
never write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from crmsync.core.types import (
    CorrelationMethod,
    Participation,
    Privilege,
    RecordType,
    TrackRule,
)
from crmsync.core.why import RefusedAttachment, Why
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.models.activities import ActivityParty, Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.panel_lookup import RecordRef, display_name
from crmsync.crm.records import RECORD_MODELS
from crmsync.crm.search import ESCAPE, escape_like

MAX_THREAD = 50
# References can name hundreds of ancestors; the nearest ones are enough to find the rest.
_MAX_REFERENCES = 100


@dataclass(frozen=True)
class Sighting:
    """One mailbox's ledger row for the message: where it was seen and what was decided."""

    id: uuid.UUID
    mailbox_id: uuid.UUID
    mailbox_name: str
    folder: str
    tracked: bool
    reason: str
    seen_at: datetime
    raw_kept: bool  # its bytes are kept: it can be tracked again by hand


@dataclass(frozen=True)
class EmailRef:
    id: uuid.UUID
    subject: str


@dataclass(frozen=True)
class TrackingReason:
    """Why the email was tracked, as the caller may see it.

    ``recorded`` is False for an email tracked before reasons were kept as data: then
    ``rule`` is unknown, ``sentence`` is its first tracking mailbox's, and the rest is
    read from its columns. ``matched_email``, ``regarding`` and ``collides_with`` are
    set only when the caller may read them; ``regarding`` is the record correlation
    found (what the matched email regarded), which a person may have changed since.
    """

    recorded: bool
    rule: TrackRule | None
    sentence: str | None
    correlation_method: CorrelationMethod
    matched_email: EmailRef | None
    matched_message_id: str | None
    token: str | None
    conversation_guid: str | None
    regarding: RecordRef | None
    collides_with: EmailRef | None
    created_sender: RecordType | None
    refused_attachments: tuple[RefusedAttachment, ...]


@dataclass(frozen=True)
class TrackingExplanation:
    email_id: uuid.UUID
    correlation_method: CorrelationMethod
    correlated_with: EmailRef | None
    reason: TrackingReason
    sightings: list[Sighting]
    parse_defects: list[str]


def explain_tracking(session: Session, principal: Principal, email: Email) -> TrackingExplanation:
    """Why ``email`` (one the caller reads: ``get_activity`` checked it) was tracked."""
    access.require(session, principal, email, Privilege.READ)
    rows = session.execute(
        select(MailboxMessage, Mailbox.name)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(MailboxMessage.email_id == email.id)
        .order_by(MailboxMessage.seen_at, MailboxMessage.id)
    )
    sightings = [
        Sighting(
            id=row.id,
            mailbox_id=row.mailbox_id,
            mailbox_name=name,
            folder=row.folder,
            tracked=row.tracked,
            reason=row.reason,
            seen_at=row.seen_at,
            raw_kept=row.raw_sha256 is not None,
        )
        for row, name in rows
    ]
    return TrackingExplanation(
        email_id=email.id,
        correlation_method=email.correlation_method,
        correlated_with=correlated_with(session, principal, email),
        reason=tracking_reason(session, principal, email, sightings),
        parse_defects=list(email.parse_defects or []),
        sightings=sightings,
    )


def tracking_reason(
    session: Session, principal: Principal, email: Email, sightings: list[Sighting]
) -> TrackingReason:
    """``email.why`` as the caller may see it; derived when the email has none."""
    why = Why.from_json(email.why)
    if why is None:
        return _derived_reason(session, principal, email, sightings)
    found = why.correlation
    matched = _readable_email(session, principal, found.email_id if found else None)
    return TrackingReason(
        recorded=True,
        rule=why.rule,
        sentence=why.sentence(),
        correlation_method=found.method if found else CorrelationMethod.NONE,
        matched_email=_email_ref(matched),
        matched_message_id=found.message_id if found else None,
        token=found.token if found else None,
        conversation_guid=found.conversation_guid if found else None,
        regarding=_readable_record(session, principal, found.regarding if found else None),
        collides_with=_email_ref(_readable_email(session, principal, why.collides_with)),
        created_sender=why.created_sender,
        refused_attachments=why.refused_attachments,
    )


def _derived_reason(
    session: Session, principal: Principal, email: Email, sightings: list[Sighting]
) -> TrackingReason:
    """What an email tracked before reasons were kept can still tell: its correlation
    columns, the email they name, and what its first tracking mailbox's ledger said."""
    method = email.correlation_method
    matched = _readable_email(session, principal, email.correlated_with_id)
    said = next((s.reason for s in sightings if s.tracked and s.reason), None)
    regarding = None
    if matched is not None and matched.regarding_type and matched.regarding_id:
        regarding = (matched.regarding_type, matched.regarding_id)
    return TrackingReason(
        recorded=False,
        rule=None,
        sentence=said,
        correlation_method=method,
        matched_email=_email_ref(matched),
        matched_message_id=(
            matched.message_id
            if matched is not None and method is CorrelationMethod.IN_REPLY_TO
            else None
        ),
        token=email.tracking_token if method is CorrelationMethod.TRACKING_TOKEN else None,
        conversation_guid=(
            email.conversation_guid if method is CorrelationMethod.CONVERSATION_INDEX else None
        ),
        regarding=_readable_record(session, principal, regarding),
        collides_with=None,
        created_sender=None,
        refused_attachments=(),
    )


def _readable_email(
    session: Session, principal: Principal, email_id: uuid.UUID | None
) -> Email | None:
    if email_id is None:
        return None
    email = session.get(Email, email_id)
    if email is None or not access.can(session, principal, email, Privilege.READ):
        return None
    return email


def _email_ref(email: Email | None) -> EmailRef | None:
    return EmailRef(email.id, email.subject) if email is not None else None


def _readable_record(
    session: Session, principal: Principal, ref: tuple[RecordType, uuid.UUID] | None
) -> RecordRef | None:
    if ref is None or ref[0] not in RECORD_MODELS:
        return None
    record = session.get(RECORD_MODELS[ref[0]], ref[1])
    if record is None or not access.can(session, principal, record, Privilege.READ):
        return None
    return RecordRef(ref[0], record.id, display_name(record))


def correlated_with(session: Session, principal: Principal, email: Email) -> EmailRef | None:
    """The tracked email correlation matched, when there is one the caller may read."""
    return _email_ref(_readable_email(session, principal, email.correlated_with_id))


# -- parties and regarding ---------------------------------------------------------------


@dataclass(frozen=True)
class PartyView:
    """A party as the caller may see it.

    ``record`` is set for a customer record the caller can read; ``colleague`` for a user
    or queue; a party whose record the caller cannot read shows its name and address only
    (``hidden``); ``unresolved`` is an address no record carried.
    """

    participation: Participation
    name: str
    address: str | None
    record: RecordRef | None = None
    colleague: bool = False
    hidden: bool = False

    @property
    def unresolved(self) -> bool:
        return self.record is None and not self.colleague and not self.hidden


def parties(session: Session, principal: Principal, email: Email) -> list[PartyView]:
    """The email's parties in order, resolved for the caller (one query per record type)."""
    wanted: dict[RecordType, set[uuid.UUID]] = {}
    for party in email.parties:
        if party.party_type is not None and party.party_id is not None:
            wanted.setdefault(party.party_type, set()).add(party.party_id)
    found = _readable(session, principal, wanted)
    return [_view(party, found) for party in email.parties]


def _readable(
    session: Session, principal: Principal, wanted: dict[RecordType, set[uuid.UUID]]
) -> dict[tuple[RecordType, uuid.UUID], Any]:
    found: dict[tuple[RecordType, uuid.UUID], Any] = {}
    for record_type, ids in wanted.items():
        condition: ColumnElement[bool]
        if record_type in (RecordType.USER, RecordType.QUEUE):
            # The directory is the organisation's to read (crm/access.py).
            model: Any = User if record_type is RecordType.USER else Queue
            condition = model.organisation_id == principal.organisation_id
        elif record_type in RECORD_MODELS:
            model = RECORD_MODELS[record_type]
            condition = access.visible(model, principal)
        else:
            continue
        for row in session.scalars(select(model).where(model.id.in_(ids), condition)):
            found[(record_type, row.id)] = row
    return found


def _view(party: ActivityParty, found: dict[tuple[RecordType, uuid.UUID], Any]) -> PartyView:
    role, address = party.participation, party.address
    if party.party_type is None or party.party_id is None:
        return PartyView(role, party.display_name, address)
    record = found.get((party.party_type, party.party_id))
    if record is None:
        return PartyView(role, party.display_name, address, hidden=True)
    name = display_name(record) or party.display_name
    if party.party_type in (RecordType.USER, RecordType.QUEUE):
        return PartyView(role, name, address, colleague=True)
    return PartyView(role, name, address, record=RecordRef(party.party_type, record.id, name))


def regarding(session: Session, principal: Principal, email: Email) -> RecordRef | None:
    """The record the email regards, when the caller may read it."""
    if email.regarding_type is None or email.regarding_id is None:
        return None
    return _readable_record(session, principal, (email.regarding_type, email.regarding_id))


# -- the conversation --------------------------------------------------------------------


def _message_ids(*values: str | None) -> list[str]:
    ids: list[str] = []
    for value in values:
        for token in (value or "").split():
            if token.startswith("<") and token.endswith(">") and token not in ids:
                ids.append(token)
    return ids


def thread(
    session: Session, principal: Principal, email: Email, *, limit: int = MAX_THREAD
) -> list[Email]:
    """The other emails of ``email``'s conversation the caller may read, oldest first.

    Found one step away — by the Message-IDs it names and that name it, by its
    Thread-Index conversation, and by the CRM reply it is or has — which in a tracked
    conversation (every reply names all its ancestors in References) is the whole of it.
    """
    named = _message_ids(email.in_reply_to, email.references)[-_MAX_REFERENCES:]
    related: list[ColumnElement[bool]] = []
    if named:
        related.append(Email.message_id.in_(named))
    if email.message_id:
        pattern = f"%{escape_like(email.message_id)}%"
        related.append(Email.in_reply_to == email.message_id)
        related.append(Email.references.like(pattern, escape=ESCAPE))
    if email.conversation_guid:
        related.append(Email.conversation_guid == email.conversation_guid)
    # A reply written in the CRM knows what it answers before it has headers of its own.
    related.append(Email.reply_to_email_id == email.id)
    if email.reply_to_email_id is not None:
        related.append(Email.id == email.reply_to_email_id)
    return list(
        session.scalars(
            select(Email)
            .where(Email.id != email.id, or_(*related), access.visible(Email, principal))
            .order_by(Email.occurred_at, Email.id)
            .limit(max(1, min(limit, MAX_THREAD)))
        )
    )


__all__ = [
    "EmailRef",
    "PartyView",
    "RecordRef",
    "Sighting",
    "TrackingExplanation",
    "TrackingReason",
    "correlated_with",
    "explain_tracking",
    "parties",
    "regarding",
    "thread",
    "tracking_reason",
]
