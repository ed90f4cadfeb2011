"""Tracking by hand a message crmsync saw in a mailbox but did not track (or a person
untracked): the side panel's and the email page's "Track".

    find      the message in a mailbox the caller can read — by Internet Message-ID, or by
              the id of that mailbox's ledger row (``MailboxMessage``) — with its raw
              bytes kept (``raw_sha256``); else NotFound, whether or not it exists
    check     create on emails, and assign to the mailbox's owner when that is someone
              else (the email is theirs, as if the engine had tracked it); a message
              tracked already is ``AlreadyTracked`` (409), naming the email if the caller
              can read it
    prepare   the raw bytes from the blob store, parsed as the engine parses (parser
              processes, time and size limits: crmsync.sync.incoming.parser_pool)
    decide    crmsync.tracking.decide ``by_hand``, through the engine's own steps
              (crmsync.sync.incoming.gather, .fates): the owner's scope, the block list
              and automation are not asked — a person asked — but correlation, party
              resolution, attachment limits and "create a contact for unknown senders"
              are the engine's
    store     crmsync.crm.inbound.store_emails, as the engine stores; a tombstone
              (crmsync.crm.models.sync_state.EmailKey) gives way to the new email; every
              mailbox ledger row of the message says "tracked by <name>"

Runs in the caller's transaction and never touches a mail server. Lives in sync/ because
it needs both tracking/ and crm/.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crmsync.core.types import Privilege, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.blobs import BlobStore
from crmsync.crm.db import utcnow
from crmsync.crm.email_actions import person_name
from crmsync.crm.errors import Conflict, NotFound, RuleViolation
from crmsync.crm.inbound import InboundEmail, NewEmail, store_emails
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import EmailKey, MailboxMessage
from crmsync.crm.preferences import mailbox_preferences
from crmsync.crm.records import get_user_in_org, require_assign_to
from crmsync.sync.context import (
    MailboxContext,
    facts,
    organisation_settings,
)
from crmsync.sync.incoming.fates import decide_message, inbound_email, message_of, policy_of
from crmsync.sync.incoming.gather import gather
from crmsync.sync.incoming.parser_pool import Fetched, Ready, discard_leftovers, prepare_fetched
from crmsync.tracking.decide import Link, Track
from crmsync.tracking.headers import extract_msgids
from crmsync.tracking.parse import ParseLimits


class AlreadyTracked(Conflict):
    """The message is tracked already; ``email_id`` is that email when the caller can read
    it, else None (409 either way: tracking it twice is what email keys prevent)."""

    code = "ALREADY_TRACKED"

    def __init__(self, email_id: uuid.UUID | None) -> None:
        where = f" as email {email_id}" if email_id else ""
        super().__init__(f"This message is tracked already{where}", field="message_id")
        self.email_id = email_id


@dataclass(frozen=True)
class TrackedByHand:
    email: Email
    reason: str  # what the mailboxes' ledgers now say


def normalise_message_id(value: str) -> str | None:
    """``' abc@x.example '`` → ``'<abc@x.example>'``, as the parser stores Message-IDs."""
    found = extract_msgids(value)
    return found[0] if found else None


def find_sighting(
    session: Session,
    principal: Principal,
    *,
    message_id: str | None = None,
    ledger_id: uuid.UUID | None = None,
) -> MailboxMessage:
    """The earliest sighting, with raw bytes, in a mailbox the caller can read; NotFound."""
    if (message_id is None) == (ledger_id is None):
        raise ValueError("name the message by message_id or by ledger_id, not both")
    query = (
        select(MailboxMessage)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(access.visible(Mailbox, principal), MailboxMessage.raw_sha256.is_not(None))
    )
    if ledger_id is not None:
        query = query.where(MailboxMessage.id == ledger_id)
        shown = str(ledger_id)
    else:
        assert message_id is not None
        wanted = normalise_message_id(message_id)
        if wanted is None:
            raise NotFound("message", message_id[:200])
        query = query.where(MailboxMessage.message_id == wanted)
        shown = wanted
    sighting = session.scalars(query.order_by(MailboxMessage.seen_at).limit(1)).first()
    if sighting is None:
        raise NotFound("message", shown)
    return sighting


def may_track(session: Session, principal: Principal, mailbox: Mailbox) -> None:
    """Forbidden unless ``principal`` may track ``mailbox``'s email by hand: create on
    emails, and assign to the mailbox's owner (the email is theirs)."""
    access.require_type_privilege(principal, RecordType.EMAIL, Privilege.CREATE)
    require_assign_to(
        principal, RecordType.EMAIL, get_user_in_org(session, principal, mailbox.owner_id)
    )


def engine_context(session: Session, mailbox: Mailbox) -> MailboxContext:
    """What the engine would know of the mailbox under today's settings, without its
    credentials (tracking by hand or a triage re-run talks to no server, so nothing secret
    is decrypted) and without the profile's cut-off (a person asked)."""
    return facts(
        mailbox,
        settings=organisation_settings(session, mailbox),
        preferences=mailbox_preferences(session, mailbox),
        process_email_after=None,
        delete_after_processing=False,
    )


def _already_tracked(session: Session, principal: Principal, email_id: uuid.UUID) -> NoReturn:
    email = session.get(Email, email_id)
    readable = email is not None and access.can(session, principal, email, Privilege.READ)
    raise AlreadyTracked(email_id if readable else None)


def track_message(
    session: Session,
    blobs: BlobStore,
    principal: Principal,
    *,
    message_id: str | None = None,
    ledger_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> TrackedByHand:
    """Track the message named by its Internet Message-ID or a ledger row's id.

    NotFound unless the caller can read a mailbox that saw it (with its bytes kept);
    Forbidden without create on emails (or assign, for someone else's mailbox);
    AlreadyTracked when it is; RuleViolation MESSAGE_UNREADABLE when it cannot be parsed.
    """
    now = now or utcnow()
    sighting = find_sighting(session, principal, message_id=message_id, ledger_id=ledger_id)
    mailbox = session.get(Mailbox, sighting.mailbox_id)
    assert mailbox is not None
    assert sighting.raw_sha256 is not None
    may_track(session, principal, mailbox)
    ctx = engine_context(session, mailbox)
    raw = blobs.get(sighting.raw_sha256)
    item = Fetched(
        sighting.folder, sighting.uidvalidity, sighting.uid, sighting.uidl, raw, len(raw)
    )
    outcomes = prepare_fetched(
        [item], ParseLimits(max_bytes=ctx.settings.max_message_bytes), blobs.root
    ).outcomes()
    try:
        ready = outcomes[0]
        if not isinstance(ready, Ready):
            raise RuleViolation(
                "MESSAGE_UNREADABLE",
                "The message could not be read, so it cannot be tracked",
                field="message_id",
            )
        return _track(session, blobs, principal, ctx, ready, now)
    finally:
        discard_leftovers(blobs.root, outcomes)


def _track(
    session: Session,
    blobs: BlobStore,
    principal: Principal,
    ctx: MailboxContext,
    ready: Ready,
    now: datetime,
) -> TrackedByHand:
    policy = policy_of(ctx)
    message = message_of(ready)
    known = gather(session, ctx.organisation_id, policy.correlation, [message])
    name = person_name(session, principal)
    fate = decide_message(session, ctx, policy, message, known, now, by_hand=name)
    if isinstance(fate, Link):  # the message, or its copy, is tracked already
        _already_tracked(session, principal, fate.email_id)
    assert isinstance(fate, Track)
    inbound = inbound_email(ctx, ready, fate)
    _publish_attachments(session, blobs, inbound, ready)
    tombstone = session.get(EmailKey, (ctx.organisation_id, fate.key))
    if tombstone is not None and tombstone.email_id is None:
        session.delete(tombstone)  # the person's word undoes a person's word
        session.flush()
    (stored,) = store_emails(session, [NewEmail(uuid.uuid4(), inbound, ready.raw_sha256)])
    if stored.email_id is None:
        raise Conflict("Someone untracked this message meanwhile", field="message_id")
    if not stored.created:  # a mailbox's sync stored it meanwhile
        _already_tracked(session, principal, stored.email_id)
    email = session.get(Email, stored.email_id)
    assert email is not None
    reason = fate.why.sentence()
    _mark_sightings(session, ctx, inbound, ready.raw_sha256, email.id, reason)
    return TrackedByHand(email, reason)


def _publish_attachments(
    session: Session, blobs: BlobStore, inbound: InboundEmail, ready: Ready
) -> None:
    """The kept attachments' staged files into place, durable, with their rows."""
    staged = dict(zip(ready.attachment_sha256, ready.attachment_staged, strict=True))
    sizes: dict[str, int] = {}
    for attachment in inbound.attachments:
        if attachment.sha256 not in sizes:
            blobs.publish(staged[attachment.sha256], attachment.sha256)
            sizes[attachment.sha256] = attachment.size
    blobs.sync()
    blobs.record(session, sizes)


def _mark_sightings(
    session: Session,
    ctx: MailboxContext,
    inbound: InboundEmail,
    raw_sha256: str,
    email_id: uuid.UUID,
    reason: str,
) -> None:
    """Every ledger row of the message, in every mailbox of the organisation, now links
    to the email — as the engine links every mailbox that saw a tracked message."""
    in_org = select(Mailbox.id).where(Mailbox.organisation_id == ctx.organisation_id)
    same = (
        MailboxMessage.message_id == inbound.message_id
        if inbound.message_id
        else (MailboxMessage.message_id.is_(None) & (MailboxMessage.raw_sha256 == raw_sha256))
    )
    # A sighting linked to another email is that email's: a message reusing its
    # Message-ID with other content (crmsync.tracking.fingerprint).
    unlinked = MailboxMessage.email_id.is_(None) | (MailboxMessage.email_id == email_id)
    session.execute(
        update(MailboxMessage)
        .where(MailboxMessage.mailbox_id.in_(in_org), same, unlinked)
        .values(tracked=True, email_id=email_id, reason=reason)
        .execution_options(synchronize_session=False)
    )


__all__ = [
    "AlreadyTracked",
    "TrackedByHand",
    "find_sighting",
    "normalise_message_id",
    "track_message",
]
