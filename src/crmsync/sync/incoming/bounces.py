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

Called by the incoming engine (crmsync.sync.tracker) inside its batch transaction for
messages whose ``automation_reason`` is ``"bounce"``; such messages are never tracked as
emails of their own. Idempotent: the same bounce seen twice (two mailboxes, a re-sync)
changes nothing the second time. Never raises for a malformed bounce; never does network
I/O; reads the raw bytes from the blob store only.
"""

from __future__ import annotations

import logging
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
from crmsync.tracking.token import TokenFormat, find_token

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
    fmt = TokenFormat(ctx.settings.tracking_token_prefix, ctx.settings.tracking_token_digits)
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
        return False
    recipients = report.recipients if report is not None else ()
    failures = tuple(r for r in recipients if r.failed) or (
        () if recipients else (UNKNOWN_RECIPIENT,)
    )
    if not failures:
        return False  # only delays or successes reported
    bounces = [
        transitions.Bounce(r.recipient, r.status, r.diagnostic or parsed.subject[:200])
        for r in failures
    ]
    mailbox = session.get(Mailbox, ctx.mailbox_id)
    if transitions.mark_bounced(
        session, original, bounces, alert_mailbox=mailbox, now=now or utcnow()
    ):
        log.info("bounce: email %s bounced (%d recipient(s))", original.id, len(bounces))
    return True
