"""One message, from parsed bytes to a tracked email (or a recorded reason not to).

    gather   what the message's keys name in the store: known emails by Message-ID,
             token, conversation and subject; records carrying its addresses
    decide   crmsync.tracking: correlate → filter → resolve parties (pure functions)
    execute  crmsync.crm.inbound: one activity per message, linked to this mailbox

Runs inside the caller's batch transaction, which holds no network connection. Never
raises for a bad message: the caller turns exceptions into item-level failures.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

import nh3
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.crm import addresses
from crmsync.crm.blobs import BlobStore
from crmsync.crm.inbound import (
    AttachmentRow,
    InboundEmail,
    PartyRow,
    add_to_queue,
    existing_email,
    store_email,
)
from crmsync.crm.models.activities import ActivityParty, Email
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.records import Contact, Lead
from crmsync.crm.records import RECORD_MODELS
from crmsync.crm.settings import UnknownSenderRecord
from crmsync.crm.types import CorrelationMethod, RecordState, RecordType
from crmsync.sync.context import MailboxContext
from crmsync.tracking.correlate import (
    Candidates,
    CorrelationSettings,
    KnownEmail,
    correlate,
    wanted_keys,
)
from crmsync.tracking.filters import BlockList, TrackingScope, automation_reason, decide
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.parties import PartyOptions, RecordRef, resolve_parties, sender_types
from crmsync.tracking.subjects import normalise_subject
from crmsync.tracking.threadindex import conversation_guid
from crmsync.tracking.token import TokenFormat, find_token


@dataclass(frozen=True)
class Outcome:
    email_id: uuid.UUID | None
    tracked: bool
    created: bool
    reason: str


def correlation_settings(ctx: MailboxContext) -> CorrelationSettings:
    settings = ctx.settings
    return CorrelationSettings(
        use_tracking_token=settings.use_tracking_token,
        token_format=TokenFormat(settings.tracking_token_prefix, settings.tracking_token_digits),
        use_conversation_index=settings.use_conversation_index,
        smart_matching=settings.smart_matching,
        smart_min_shared_participants=settings.smart_matching_min_participants,
    )


def dedupe_key(parsed: ParsedMessage, raw_sha256: str) -> str:
    # Each recipient's copy differs in its trace headers, so the raw hash only serves
    # messages without a Message-ID (rare, and then per copy).
    return parsed.message_id or f"sha256:{raw_sha256}"


# -- gather ------------------------------------------------------------------------------


def _known(session: Session, emails: Iterable[Email]) -> list[KnownEmail]:
    emails = list(emails)
    if not emails:
        return []
    participants: dict[uuid.UUID, set[str]] = {email.id: set() for email in emails}
    rows = session.execute(
        select(
            ActivityParty.activity_id,
            ActivityParty.address,
            ActivityParty.party_type,
            ActivityParty.party_id,
        ).where(ActivityParty.activity_id.in_(participants))
    )
    for activity_id, address, _, _ in rows:
        normal = addresses.normalise_address(address) if address else None
        if normal:
            participants[activity_id].add(normal)
    return [
        KnownEmail(
            activity_id=email.id,
            message_id=email.message_id,
            regarding=(email.regarding_type, email.regarding_id)
            if email.regarding_type is not None and email.regarding_id is not None
            else None,
            participants=frozenset(participants[email.id]),
            conversation_guid=email.conversation_guid,
            tracking_token=email.tracking_token,
            normalised_subject=email.normalised_subject or "",
            occurred_at=email.occurred_at,
        )
        for email in emails
    ]


def gather_candidates(
    session: Session, organisation_id: uuid.UUID, parsed: ParsedMessage, ctx: MailboxContext
) -> Candidates:
    keys = wanted_keys(parsed, correlation_settings(ctx))
    in_org = Email.organisation_id == organisation_id
    by_message_id: dict[str, KnownEmail] = {}
    by_token: dict[str, KnownEmail] = {}
    by_conversation: dict[str, list[KnownEmail]] = {}
    by_subject: dict[str, list[KnownEmail]] = {}
    if keys.message_ids:
        found = session.scalars(select(Email).where(in_org, Email.message_id.in_(keys.message_ids)))
        for known in _known(session, found):
            if known.message_id:
                by_message_id[known.message_id] = known
    if keys.token:
        found = session.scalars(
            select(Email).where(in_org, Email.tracking_token == keys.token).limit(5)
        )
        for known in _known(session, found):
            by_token.setdefault(keys.token, known)
    if keys.conversation_guid:
        found = session.scalars(
            select(Email)
            .where(in_org, Email.conversation_guid == keys.conversation_guid)
            .order_by(Email.occurred_at.desc())
            .limit(20)
        )
        by_conversation[keys.conversation_guid] = _known(session, found)
    if keys.normalised_subject:
        found = session.scalars(
            select(Email)
            .where(in_org, Email.normalised_subject == keys.normalised_subject[:400])
            .order_by(Email.occurred_at.desc())
            .limit(20)
        )
        by_subject[keys.normalised_subject] = _known(session, found)
    return Candidates(
        by_message_id=by_message_id,
        by_token=by_token,
        by_conversation=by_conversation,
        by_subject=by_subject,
    )


def _all_addresses(parsed: ParsedMessage) -> list[str]:
    return [
        entry.address
        for group in (parsed.from_, parsed.to, parsed.cc, parsed.bcc)
        for entry in group
    ]


def _is_active(record: object) -> bool:
    if isinstance(record, User | Queue):
        return bool(record.is_active)
    return getattr(record, "state", RecordState.ACTIVE) is RecordState.ACTIVE


def gather_matches(
    session: Session, organisation_id: uuid.UUID, addresses_: Sequence[str]
) -> dict[str, list[RecordRef]]:
    found = addresses.lookup(session, organisation_id, addresses_)
    models: dict[RecordType, Any] = {
        RecordType.USER: User,
        RecordType.QUEUE: Queue,
        **RECORD_MODELS,
    }
    matches: dict[str, list[RecordRef]] = {}
    for address, keys in found.items():
        refs: list[RecordRef] = []
        for record_type, record_id in keys:
            record = session.get(models[record_type], record_id)
            if record is not None:
                refs.append(RecordRef(record_type, record_id, _is_active(record)))
        matches[address] = refs
    return matches


# -- execute -----------------------------------------------------------------------------


def _description(parsed: ParsedMessage) -> str:
    if parsed.html_body:
        return nh3.clean(parsed.html_body)
    return "<br>\n".join(html.escape(line) for line in parsed.text_body.splitlines())


def _attachments(
    parsed: ParsedMessage, ctx: MailboxContext
) -> tuple[list[AttachmentRow], list[str]]:
    blocked = {ext.lower().lstrip(".") for ext in ctx.settings.blocked_attachment_extensions}
    kept: list[AttachmentRow] = []
    refused: list[str] = []
    for part in parsed.attachments:
        extension = PurePath(part.filename).suffix.lower().lstrip(".")
        if extension in blocked:
            refused.append(f"{part.filename} (blocked type)")
        elif part.size > ctx.settings.max_attachment_bytes:
            refused.append(f"{part.filename} (over {ctx.settings.max_attachment_bytes} bytes)")
        else:
            kept.append(
                AttachmentRow(
                    part.filename or "attachment", part.content_type, part.data, part.content_id
                )
            )
    return kept, refused


def _create_for_sender(
    session: Session, ctx: MailboxContext, parsed: ParsedMessage
) -> tuple[RecordType, uuid.UUID] | None:
    kind = ctx.preferences.create_for_unknown_sender
    if kind is UnknownSenderRecord.NONE or not parsed.from_:
        return None
    sender = parsed.from_[0]
    first, _, last = (sender.name or "").strip().rpartition(" ")
    last = last or sender.address.partition("@")[0]
    owned = {
        "organisation_id": ctx.organisation_id,
        "owner_id": ctx.owner_id,
        "owning_business_unit_id": ctx.owning_business_unit_id,
    }
    record: Contact | Lead
    if kind is UnknownSenderRecord.CONTACT:
        record = Contact(first_name=first, last_name=last, email1=sender.address, **owned)
    else:
        record = Lead(
            subject=f"Email from {sender.name or sender.address}"[:300],
            first_name=first,
            last_name=last,
            email1=sender.address,
            **owned,
        )
    session.add(record)
    session.flush()
    return record.record_type, record.id


def track(
    session: Session,
    blobs: BlobStore,
    ctx: MailboxContext,
    parsed: ParsedMessage,
    raw_sha256: str,
    received_at: datetime,
) -> Outcome:
    key = dedupe_key(parsed, raw_sha256)
    already = existing_email(session, ctx.organisation_id, key)
    if already is not None:
        # Tracked from another mailbox; a queue still gets its queue item.
        add_to_queue(session, ctx.queue_id, already.id)
        return Outcome(already.id, True, False, "already tracked from another mailbox")

    settings = correlation_settings(ctx)
    candidates = gather_candidates(session, ctx.organisation_id, parsed, ctx)
    correlation = correlate(parsed, candidates, settings)
    matches = gather_matches(session, ctx.organisation_id, _all_addresses(parsed))
    entries = ctx.settings.blocked_senders
    block_list = BlockList(
        addresses=frozenset(e for e in entries if "@" in e.strip("@")),
        domains=frozenset(e for e in entries if "@" not in e.strip("@")),
    )
    sender = parsed.from_[0].address if parsed.from_ else ""
    decision = decide(
        TrackingScope(ctx.preferences.track_scope),
        correlated=correlation.match is not None,
        sender_types=sender_types(parsed, matches),
        automation=automation_reason(parsed),
        blocked=bool(sender) and block_list.blocks(sender),
    )
    if not decision.track:
        return Outcome(None, False, False, decision.reason)

    created_for_sender = None
    if not any(matches.get(addresses.normalise_address(sender) or "", [])):
        created_for_sender = _create_for_sender(session, ctx, parsed)
        if created_for_sender is not None:
            matches = gather_matches(session, ctx.organisation_id, _all_addresses(parsed))
    parties = resolve_parties(
        parsed, matches, PartyOptions(ctx.preferences.leave_ambiguous_unresolved)
    )
    attachments, refused = _attachments(parsed, ctx)
    token = (
        find_token(parsed.subject, settings.token_format) if settings.use_tracking_token else None
    )
    inbound = InboundEmail(
        organisation_id=ctx.organisation_id,
        owner_id=ctx.owner_id,
        owning_business_unit_id=ctx.owning_business_unit_id,
        dedupe_key=key,
        subject=parsed.subject,
        description=_description(parsed),
        body_text=parsed.text_body,
        occurred_at=parsed.date or received_at,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references) or None,
        conversation_index=parsed.thread_index,
        conversation_guid=conversation_guid(parsed.thread_index),
        normalised_subject=normalise_subject(parsed.subject),
        tracking_token=token,
        correlation_method=correlation.method,
        regarding=correlation.match.regarding if correlation.match else None,
        parties=[
            PartyRow(
                participation=party.participation,
                address=party.address,
                display_name=party.display_name,
                record_type=party.record.record_type if party.record else None,
                record_id=party.record.record_id if party.record else None,
            )
            for party in parties
        ],
        attachments=attachments,
        queue_id=ctx.queue_id,
    )
    email, created = store_email(session, blobs, inbound, raw_sha256)
    reason = decision.reason
    if correlation.method is not CorrelationMethod.NONE:
        reason += f"; correlated by {correlation.method.value.replace('_', ' ')}"
    if created_for_sender is not None:
        reason += f"; created a {created_for_sender[0].value} for the sender"
    if refused:
        reason += f"; attachments not kept: {', '.join(refused)}"
    return Outcome(email.id, True, created, reason)
