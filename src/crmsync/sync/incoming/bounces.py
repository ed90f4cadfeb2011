"""Bounces: a delivery status notification that arrives in a mailbox marks the CRM email
it reports on, and tells that email's owner.

    gather   the report (crmsync.tracking.dsn) from the raw bytes, else from the parsed
             message; the CRM-sent email it names, by Message-ID (returned header, then
             the bounce's In-Reply-To/References, then ids quoted in its text), else by
             the tracking token in the returned or the bounce's subject
    decide   only permanent failures count (Action: failed, or a 5.x.x status); a
             "delayed" report is a warning from a server still trying, not a bounce
    execute  crmsync.crm.outbound_transitions.mark_bounced: bounced_at, recipients,
             status, reason; one alert to the owner of the mailbox that sent it

The incoming engine (``ingest``) calls ``find_bounced`` inside its batch transaction for
messages whose ``automation_reason`` is a bounce, hands what it found to
crmsync.tracking.decide (``bounce_of``) — which never tracks such a message as an email of
its own — and, when the fate is ``Bounce``, calls ``mark``. ``handle_bounce`` does all three
for one message. Idempotent: the same bounce seen twice (two mailboxes, a re-sync)
changes nothing the second time. Never raises for a malformed bounce; never does network
I/O; reads the raw bytes from the blob store only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import Direction
from crmsync.crm import outbound_transitions as transitions
from crmsync.crm.blobs import BlobStore
from crmsync.crm.db import utcnow
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.sync.context import MailboxContext
from crmsync.tracking.dsn import DeliveryReport, RecipientStatus, parse_dsn, report_from_parsed
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.token import find_token

log = logging.getLogger(__name__)

UNKNOWN_RECIPIENT = RecipientStatus("", "failed", "", "")


def _report(
    blobs: BlobStore | None, parsed: ParsedMessage, raw_sha256: str | None
) -> DeliveryReport | None:
    if blobs is not None and raw_sha256:
        try:
            report = parse_dsn(blobs.get(raw_sha256))
        except (OSError, ValueError):
            report = None
        if report is not None:
            return report
    return report_from_parsed(parsed)


def _by_token(session: Session, ctx: MailboxContext, subjects: list[str]) -> Email | None:
    if not ctx.settings.use_tracking_token:
        return None
    fmt = ctx.settings.token_format
    for subject in subjects:
        token = find_token(subject, fmt)
        if token is None:
            continue
        found = session.scalar(
            select(Email)
            .where(
                Email.organisation_id == ctx.organisation_id,
                Email.tracking_token == token,
                Email.direction == Direction.OUTGOING,
            )
            .order_by(Email.occurred_at.desc())
            .limit(1)
        )
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Bounced:
    """A permanent-failure bounce of the CRM email ``original``: who could not be reached."""

    original: Email
    bounces: list[transitions.Bounce]


def find_bounced(
    session: Session,
    blobs: BlobStore | None,
    ctx: MailboxContext,
    parsed: ParsedMessage,
    raw_sha256: str | None,
) -> Bounced | None:
    """The CRM email a bounce reports on, when it reports a permanent failure; None when
    it names no CRM email, or only delays and successes (nothing is written)."""
    report = _report(blobs, parsed, raw_sha256)
    original = None
    if report is not None:
        original = transitions.outgoing_email(
            session, ctx.organisation_id, list(report.message_ids)
        )
    if original is None:
        subjects = [report.original_subject] if report is not None else []
        original = _by_token(session, ctx, [*subjects, parsed.subject])
    if original is None:
        return None
    recipients = report.recipients if report is not None else ()
    failures = tuple(r for r in recipients if r.failed) or (
        () if recipients else (UNKNOWN_RECIPIENT,)
    )
    if not failures:
        return None  # only delays or successes reported
    bounces = [
        transitions.Bounce(r.recipient, r.status, r.diagnostic or parsed.subject[:200])
        for r in failures
    ]
    return Bounced(original, bounces)


def mark(session: Session, ctx: MailboxContext, bounced: Bounced, now: datetime) -> None:
    """The original marked bounced and its owner alerted (once, however often seen)."""
    mailbox = session.get(Mailbox, ctx.mailbox_id)
    original = bounced.original
    if transitions.mark_bounced(session, original, bounced.bounces, alert_mailbox=mailbox, now=now):
        log.info("bounce: email %s bounced (%d recipient(s))", original.id, len(bounced.bounces))


def handle_bounce(
    session: Session,
    blobs: BlobStore | None,
    ctx: MailboxContext,
    parsed: ParsedMessage,
    raw_sha256: str | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Mark the CRM email a bounce reports on; True when one was found and the bounce is a
    permanent failure (recorded now or before), False otherwise (nothing written)."""
    bounced = find_bounced(session, blobs, ctx, parsed, raw_sha256)
    if bounced is None:
        return False
    mark(session, ctx, bounced, now or utcnow())
    return True
