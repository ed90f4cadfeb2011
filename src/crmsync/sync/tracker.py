"""A batch of messages, from parsed bytes to tracked emails (or recorded reasons not to).

    gather   one query per kind for the whole batch: dedupe keys already stored (and
             the tombstones of messages a person untracked), known emails by
             Message-ID / token / conversation / subject, records carrying any of the
             batch's addresses (with their active flags)
    identify per message: its key (the Message-ID), unless an email holding that key has
             other content (crmsync.tracking.fingerprint) — then the message reuses the
             Message-ID and is keyed apart (``collision_key``): its own email
    decide   per message, in order, with crmsync.tracking: correlate → filter → parties.
             A message tracked earlier in the batch is a candidate for later ones, so a
             thread that arrives in one batch still correlates. An untracked message
             stays untracked.
    execute  crmsync.crm.inbound inserts the batch's activities in bulk

Runs inside the caller's batch transaction, which holds no network connection. Batching
is what makes ingest fast: per-message round trips cost more than everything else
together (see bench/ingest.py).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.email_keys import collision_key, dedupe_key_of
from crmsync.core.types import CorrelationMethod, RecordState, RecordType
from crmsync.crm import addresses
from crmsync.crm.db import table_of
from crmsync.crm.inbound import AttachmentRow, InboundEmail, PartyRow
from crmsync.crm.models.activities import ActivityParty, Email
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.records import Contact, Lead
from crmsync.crm.models.sync_state import EmailKey
from crmsync.crm.records import RECORD_MODELS
from crmsync.crm.settings import UnknownSenderRecord
from crmsync.sync.context import MailboxContext
from crmsync.sync.incoming.parser_pool import Ready
from crmsync.tracking.correlate import (
    Candidates,
    Correlation,
    CorrelationSettings,
    KnownEmail,
    correlate,
    participants,
    subject_key,
    wanted_keys,
)
from crmsync.tracking.filters import BlockList, TrackingScope, automation_reason, decide
from crmsync.tracking.fingerprint import fingerprint, same_content
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.parties import PartyOptions, RecordRef, resolve_parties, sender_types
from crmsync.tracking.threadindex import conversation_guid
from crmsync.tracking.token import TokenFormat, find_token


@dataclass(frozen=True)
class Decision:
    """What to do with one message: link to ``email_id``, track ``inbound``, or neither."""

    reason: str
    inbound: InboundEmail | None = None
    email_id: uuid.UUID | None = None
    create_for_sender: bool = False


@dataclass(frozen=True)
class Identity:
    """Which message this is: its key in ``email_keys`` and its content fingerprint.

    ``collides_with`` is the email that holds the message's Message-ID with other content
    (the key is then the ``collision_key``); None for an ordinary message.
    """

    key: str
    fingerprint: str
    collides_with: uuid.UUID | None = None


@dataclass
class Gathered:
    existing: dict[str, uuid.UUID] = field(default_factory=dict)  # dedupe key → email
    # dedupe key → that email's content fingerprint (None: unknown, stored before them)
    fingerprints: dict[str, str | None] = field(default_factory=dict)
    # raw SHA-256 → the message's own fingerprint, computed once however often it is asked
    contents: dict[str, str] = field(default_factory=dict)
    untracked: dict[str, str] = field(default_factory=dict)  # dedupe key → why not
    by_message_id: dict[str, KnownEmail] = field(default_factory=dict)
    by_token: dict[str, KnownEmail] = field(default_factory=dict)
    by_conversation: dict[str, list[KnownEmail]] = field(default_factory=dict)
    by_subject: dict[str, list[KnownEmail]] = field(default_factory=dict)
    matches: dict[str, list[RecordRef]] = field(default_factory=dict)

    def candidates(self) -> Candidates:
        return Candidates(
            by_message_id=self.by_message_id,
            by_token=self.by_token,
            by_conversation=self.by_conversation,
            by_subject=self.by_subject,
        )

    def content_of(self, parsed: ParsedMessage, raw_sha256: str) -> str:
        content = self.contents.get(raw_sha256)
        if content is None:
            content = self.contents[raw_sha256] = fingerprint(parsed)
        return content

    def planned(self, inbound: InboundEmail, email_id: uuid.UUID) -> None:
        """``inbound`` will be stored as ``email_id`` with this batch: later messages of
        the batch find it by key (its copies link to it) and correlate with it."""
        self.existing[inbound.dedupe_key] = email_id
        self.fingerprints[inbound.dedupe_key] = inbound.content_fingerprint
        self.learn(known_from(inbound, email_id))

    def learn(self, known: KnownEmail) -> None:
        """A message just tracked becomes a candidate for the rest of the batch."""
        if known.message_id:
            self.by_message_id[known.message_id] = known
        if known.tracking_token:
            self.by_token.setdefault(known.tracking_token, known)
        if known.conversation_guid:
            self.by_conversation.setdefault(known.conversation_guid, []).insert(0, known)
        if known.normalised_subject:
            self.by_subject.setdefault(known.normalised_subject, []).insert(0, known)


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
    key = dedupe_key_of(parsed.message_id, raw_sha256)
    assert key is not None  # a digest always exists
    return key


def identify(gathered: Gathered, parsed: ParsedMessage, raw_sha256: str) -> Identity:
    """The message's identity given what the batch gathered (pure)."""
    key = dedupe_key(parsed, raw_sha256)
    content = gathered.content_of(parsed, raw_sha256)
    holder = gathered.existing.get(key)
    if (
        holder is None
        or parsed.message_id is None
        or same_content(gathered.fingerprints.get(key), content)
    ):
        return Identity(key, content)
    return Identity(collision_key(parsed.message_id, content), content, collides_with=holder)


def collision_note(identity: Identity) -> str:
    """The ledger's words for a message that reuses another email's Message-ID."""
    return f"same Message-ID as email {identity.collides_with} but different content"


def untracked_reason(name: str | None) -> str:
    """What a mailbox's ledger says of a message a person untracked."""
    return f"untracked by {name}" if name else "untracked by a person"


# -- gather ------------------------------------------------------------------------------


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


def _all_addresses(parsed: ParsedMessage) -> list[str]:
    return [
        entry.address
        for group in (parsed.from_, parsed.to, parsed.cc, parsed.bcc)
        for entry in group
    ]


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


def gather(
    session: Session, ctx: MailboxContext, messages: Sequence[tuple[ParsedMessage, str]]
) -> Gathered:
    """Everything the batch's decisions need, in a handful of queries."""
    settings = correlation_settings(ctx)
    gathered = Gathered()
    keys = [dedupe_key(parsed, sha) for parsed, sha in messages]
    in_org = Email.organisation_id == ctx.organisation_id
    _gather_keys(session, ctx, keys, gathered)
    # Messages reusing a stored email's Message-ID with other content (rare): their own
    # keys, so that a copy seen in another mailbox before links to that copy's email.
    collisions = [
        identity.key
        for parsed, sha in messages
        if dedupe_key(parsed, sha) in gathered.existing
        and (identity := identify(gathered, parsed, sha)).collides_with is not None
    ]
    _gather_keys(session, ctx, collisions, gathered)
    wanted = [wanted_keys(parsed, settings) for parsed, _ in messages]
    message_ids = {mid for keys_ in wanted for mid in keys_.message_ids}
    tokens = {keys_.token for keys_ in wanted if keys_.token}
    conversations = {keys_.conversation_guid for keys_ in wanted if keys_.conversation_guid}
    subjects = {keys_.normalised_subject[:400] for keys_ in wanted if keys_.normalised_subject}
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
            for known in _known(session, found):
                gathered.learn(known)
    every_address = {address for parsed, _ in messages for address in _all_addresses(parsed)}
    gathered.matches = gather_matches(session, ctx.organisation_id, sorted(every_address))
    return gathered


def _gather_keys(
    session: Session, ctx: MailboxContext, keys: Sequence[str], gathered: Gathered
) -> None:
    """Which of ``keys`` are tracked (with their email's fingerprint) or untracked."""
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
            .where(EmailKey.organisation_id == ctx.organisation_id, EmailKey.key.in_(chunk))
        )
        for key, email_id, full_name, username, content in rows:
            if email_id is not None:
                gathered.existing[key] = email_id
                gathered.fingerprints[key] = content
            else:
                gathered.untracked[key] = untracked_reason(full_name or username)


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- decide ------------------------------------------------------------------------------


def _attachments(ready: Ready, ctx: MailboxContext) -> tuple[list[AttachmentRow], list[str]]:
    blocked = {ext.lower().lstrip(".") for ext in ctx.settings.blocked_attachment_extensions}
    kept: list[AttachmentRow] = []
    refused: list[str] = []
    for part, sha256 in zip(ready.parsed.attachments, ready.attachment_sha256, strict=True):
        extension = PurePath(part.filename).suffix.lower().lstrip(".")
        if extension in blocked:
            refused.append(f"{part.filename} (blocked type)")
        elif part.size > ctx.settings.max_attachment_bytes:
            refused.append(f"{part.filename} (over {ctx.settings.max_attachment_bytes} bytes)")
        else:
            kept.append(
                AttachmentRow(
                    part.filename or "attachment",
                    part.content_type,
                    sha256,
                    part.size,
                    part.content_id,
                )
            )
    return kept, refused


def _block_list(ctx: MailboxContext) -> BlockList:
    return _block_list_of(tuple(ctx.settings.blocked_senders))


@functools.lru_cache(maxsize=64)
def _block_list_of(entries: tuple[str, ...]) -> BlockList:
    """Built once per distinct list: normalising every entry per message cost more than
    deciding the message."""
    return BlockList(
        addresses=frozenset(e for e in entries if "@" in e.strip("@")),
        domains=frozenset(e for e in entries if "@" not in e.strip("@")),
    )


def decide_message(
    ctx: MailboxContext, ready: Ready, gathered: Gathered, received_at: datetime
) -> Decision:
    """Pure given ``gathered``: link, skip with a reason, or track (and how)."""
    parsed = ready.parsed
    identity = identify(gathered, parsed, ready.raw_sha256)
    key = identity.key
    if key in gathered.untracked:
        return Decision(gathered.untracked[key])
    if key in gathered.existing:
        return Decision("already tracked from another mailbox", email_id=gathered.existing[key])
    settings = correlation_settings(ctx)
    correlation = correlate(parsed, gathered.candidates(), settings)
    sender = parsed.from_[0].address if parsed.from_ else ""
    decision = decide(
        # The same values: the owner's choice (crm) names the filter's scope (tracking).
        TrackingScope(ctx.preferences.track_scope.value),
        correlated=correlation.match is not None,
        sender_types=sender_types(parsed, gathered.matches),
        automation=automation_reason(parsed),
        blocked=bool(sender) and _block_list(ctx).blocks(sender),
    )
    if identity.collides_with is not None:
        if not decision.track:
            return Decision(f"{collision_note(identity)}; {decision.reason}")
        reason = f"{collision_note(identity)}: kept as its own email; {decision.reason}"
    elif not decision.track:
        return Decision(decision.reason)
    else:
        reason = decision.reason
    return _track(ctx, ready, gathered, received_at, settings, correlation, identity, reason)


def forced_decision(
    ctx: MailboxContext, ready: Ready, gathered: Gathered, received_at: datetime, reason: str
) -> Decision:
    """Track the message whatever the owner's scope, the block list or automation say —
    a person asked for it (crmsync.sync.manual_track) — correlated and resolved as the
    engine would. ``reason`` says who asked."""
    settings = correlation_settings(ctx)
    correlation = correlate(ready.parsed, gathered.candidates(), settings)
    identity = identify(gathered, ready.parsed, ready.raw_sha256)
    if identity.collides_with is not None:
        reason = f"{collision_note(identity)}: kept as its own email; {reason}"
    return _track(ctx, ready, gathered, received_at, settings, correlation, identity, reason)


def _track(
    ctx: MailboxContext,
    ready: Ready,
    gathered: Gathered,
    received_at: datetime,
    settings: CorrelationSettings,
    correlation: Correlation,
    identity: Identity,
    reason: str,
) -> Decision:
    """The decision to track ``ready``, with everything its activity needs."""
    parsed = ready.parsed
    sender = parsed.from_[0].address if parsed.from_ else ""
    sender_known = any(gathered.matches.get(normalise_address(sender) or "", []))
    wants_record = ctx.preferences.create_for_unknown_sender is not UnknownSenderRecord.NONE
    attachments, refused = _attachments(ready, ctx)
    if correlation.method is not CorrelationMethod.NONE:
        reason += f"; correlated by {correlation.method.value.replace('_', ' ')}"
    if refused:
        reason += f"; attachments not kept: {', '.join(refused)}"
    inbound = InboundEmail(
        organisation_id=ctx.organisation_id,
        owner_id=ctx.owner_id,
        owning_business_unit_id=ctx.owning_business_unit_id,
        dedupe_key=identity.key,
        subject=parsed.subject,
        description=ready.description,
        body_text=parsed.text_body,
        occurred_at=parsed.date or received_at,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references) or None,
        conversation_index=parsed.thread_index,
        conversation_guid=conversation_guid(parsed.thread_index),
        normalised_subject=subject_key(parsed.subject, settings),
        tracking_token=(
            find_token(parsed.subject, settings.token_format)
            if settings.use_tracking_token
            else None
        ),
        correlation_method=correlation.method,
        regarding=correlation.match.regarding if correlation.match else None,
        parties=_party_rows(parsed, gathered.matches, ctx),
        attachments=attachments,
        queue_id=ctx.queue_id,
        defects=parsed.defects,
        correlated_with=correlation.match.activity_id if correlation.match else None,
        content_fingerprint=identity.fingerprint,
    )
    return Decision(
        reason,
        inbound=inbound,
        create_for_sender=wants_record and bool(sender) and not sender_known,
    )


def _party_rows(
    parsed: ParsedMessage, matches: dict[str, list[RecordRef]], ctx: MailboxContext
) -> list[PartyRow]:
    options = PartyOptions(ctx.preferences.leave_ambiguous_unresolved)
    return [
        PartyRow(
            participation=party.participation,
            address=party.address,
            display_name=party.display_name,
            record_type=party.record.record_type if party.record else None,
            record_id=party.record.record_id if party.record else None,
        )
        for party in resolve_parties(parsed, matches, options)
    ]


def known_from(inbound: InboundEmail, email_id: uuid.UUID) -> KnownEmail:
    return KnownEmail(
        activity_id=email_id,
        message_id=inbound.message_id,
        regarding=inbound.regarding,
        participants=participants(p.address for p in inbound.parties if p.address),
        conversation_guid=inbound.conversation_guid,
        tracking_token=inbound.tracking_token,
        normalised_subject=inbound.normalised_subject,
        occurred_at=inbound.occurred_at,
    )


# -- the rare write-before-decide path ---------------------------------------------------


def create_sender_record(
    session: Session, ctx: MailboxContext, parsed: ParsedMessage, gathered: Gathered
) -> RecordType:
    """Make a contact (or lead) for an unknown sender and refresh the batch's matches."""
    sender = parsed.from_[0]
    first, _, last = (sender.name or "").strip().rpartition(" ")
    last = last or sender.address.partition("@")[0]
    owned = {
        "organisation_id": ctx.organisation_id,
        "owner_id": ctx.owner_id,
        "owning_business_unit_id": ctx.owning_business_unit_id,
    }
    record: Contact | Lead
    if ctx.preferences.create_for_unknown_sender is UnknownSenderRecord.CONTACT:
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
    session.flush()  # the address index learns the new record here
    gathered.matches.update(gather_matches(session, ctx.organisation_id, [sender.address]))
    return record.record_type
