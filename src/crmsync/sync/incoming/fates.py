"""Between a mailbox and crmsync.tracking.decide: what the decision is asked with, the
one write it may ask for first, and the crm/ row a tracked message becomes.

    policy_of(ctx)          the owner's preferences and the organisation's settings, as the
                            plain values of ``tracking.decide.Policy``
    message_of(ready)       a prepared message as ``tracking.decide.Message``
    decide_message(…)       ``decide``; when it asks for a record for an unknown sender,
                            that contact or lead is created (in a savepoint) and the
                            message decided again, which names the record in its Why
    inbound_email(…)        a ``Track`` fate as the ``crm.inbound.InboundEmail`` to store

Used by the incoming engine (``ingest``) and by tracking by hand (crmsync.sync.manual_track),
so a message is decided and stored alike whoever asks. Runs in the caller's transaction;
never talks to a mail server.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from crmsync.core.types import RecordType
from crmsync.crm.inbound import AttachmentRow, InboundEmail, PartyRow
from crmsync.crm.models.records import Contact, Lead
from crmsync.crm.settings import UnknownSenderRecord
from crmsync.sync.context import MailboxContext
from crmsync.sync.incoming.gather import gather_matches
from crmsync.sync.incoming.parser_pool import Ready
from crmsync.tracking.correlate import CorrelationSettings
from crmsync.tracking.decide import Fate, Known, Message, Policy, Track, decide
from crmsync.tracking.filters import BlockList
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.parties import PartyOptions

SENDER_RECORDS = {
    UnknownSenderRecord.CONTACT: RecordType.CONTACT,
    UnknownSenderRecord.LEAD: RecordType.LEAD,
}


def policy_of(ctx: MailboxContext) -> Policy:
    settings, preferences = ctx.settings, ctx.preferences
    blocked = settings.blocked_senders
    return Policy(
        scope=preferences.track_scope,
        correlation=CorrelationSettings(
            use_tracking_token=settings.use_tracking_token,
            token_format=settings.token_format,
            use_conversation_index=settings.use_conversation_index,
            smart_matching=settings.smart_matching,
            smart_min_shared_participants=settings.smart_matching_min_participants,
        ),
        blocked_senders=BlockList(
            addresses=frozenset(entry for entry in blocked if "@" in entry.strip("@")),
            domains=frozenset(entry for entry in blocked if "@" not in entry.strip("@")),
        ),
        blocked_extensions=frozenset(
            extension.lower().lstrip(".") for extension in settings.blocked_attachment_extensions
        ),
        max_attachment_bytes=settings.max_attachment_bytes,
        sender_record=SENDER_RECORDS.get(preferences.create_for_unknown_sender),
        parties=PartyOptions(preferences.leave_ambiguous_unresolved),
        process_email_after=ctx.process_email_after,
        queue_id=ctx.queue_id,
    )


def message_of(ready: Ready) -> Message:
    return Message.of(ready.parsed, ready.raw_sha256, tuple(ready.attachment_sha256))


def decide_message(
    session: Session,
    ctx: MailboxContext,
    policy: Policy,
    message: Message,
    known: Known,
    now: datetime,
    *,
    by_hand: str | None = None,
) -> Fate:
    """The message's fate, once the sender's record it asks for (if any) exists."""
    fate = decide(message, known, policy, now, by_hand=by_hand)
    if not isinstance(fate, Track) or fate.sender_record is None:
        return fate
    with session.begin_nested():
        made = create_sender_record(session, ctx, message.parsed, fate.sender_record, known)
    return decide(message, known, policy, now, by_hand=by_hand, created_sender=made)


def create_sender_record(
    session: Session,
    ctx: MailboxContext,
    parsed: ParsedMessage,
    record_type: RecordType,
    known: Known,
) -> RecordType:
    """A contact (or lead) owned by the mailbox's owner for the message's sender; the
    batch's ``known.matches`` learn it."""
    sender = parsed.from_[0]
    first, _, last = (sender.name or "").strip().rpartition(" ")
    last = last or sender.address.partition("@")[0]
    owned = {
        "organisation_id": ctx.organisation_id,
        "owner_id": ctx.owner_id,
        "owning_business_unit_id": ctx.owning_business_unit_id,
    }
    record: Contact | Lead
    if record_type is RecordType.CONTACT:
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
    known.matches.update(gather_matches(session, ctx.organisation_id, [sender.address]))
    return record.record_type


def inbound_email(ctx: MailboxContext, ready: Ready, track: Track) -> InboundEmail:
    """What crm/ stores for a message decided ``track``, owned as the mailbox is."""
    parsed = ready.parsed
    attachments: list[AttachmentRow] = []
    for index in track.kept_attachments:
        part = parsed.attachments[index]
        sha256 = ready.attachment_sha256[index]
        name = part.filename or "attachment"
        attachments.append(
            AttachmentRow(name, part.content_type, sha256, part.size, part.content_id)
        )
    return InboundEmail(
        organisation_id=ctx.organisation_id,
        owner_id=ctx.owner_id,
        owning_business_unit_id=ctx.owning_business_unit_id,
        dedupe_key=track.key,
        subject=parsed.subject,
        description=ready.description,
        body_text=parsed.text_body,
        occurred_at=track.occurred_at,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references) or None,
        conversation_index=parsed.thread_index,
        conversation_guid=track.conversation_guid,
        normalised_subject=track.normalised_subject,
        tracking_token=track.tracking_token,
        correlation_method=track.correlation_method,
        regarding=track.regarding,
        parties=[
            PartyRow(
                participation=party.participation,
                address=party.address,
                display_name=party.display_name,
                record_type=party.record.record_type if party.record else None,
                record_id=party.record.record_id if party.record else None,
            )
            for party in track.parties
        ],
        attachments=attachments,
        queue_id=track.queue_id,
        defects=parsed.defects,
        correlated_with=track.correlated_with,
        content_fingerprint=track.fingerprint,
        why=track.why,
    )
