"""``sync_incoming(mailbox_id)``: the unit of incoming work, idempotent and crash-safe.

    lease ──▶ gather context ──▶ connect ──▶ IMAP folder / POP3 drop ──▶ release lease
     │ busy: another worker has it → return at once
     └ not runnable (not approved, disabled, method none) → return, nothing touched

Run it twice, or after a crash at any line, and the CRM holds each message exactly once:
messages are fetched outside any transaction, then one short transaction per batch
stores their activities, the mailbox's message ledger and the cursor that covers them
together. A crash before that commit leaves the cursor where it was, and the next run
redoes the batch; the org-wide email key makes a redo link, not duplicate.

A failing message never stops the mailbox: its raw bytes are kept, an item-level
failure says why, and the cursor moves on. A failing connection is a channel failure
(crmsync.sync.health: retry transient errors with backoff, disable on permanent ones).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from crmsync.crm.alerts import mark_channel_ok, record_item_failure
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.crm.types import Channel
from crmsync.sync import leases
from crmsync.sync.context import MailboxContext, load_context
from crmsync.sync.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.sync.health import record_failure
from crmsync.sync.oauth_tokens import ensure_access_token
from crmsync.sync.tracker import track
from crmsync.tracking.parse import MalformedMessage, ParsedMessage, ParseLimits, parse_message

log = logging.getLogger(__name__)


@dataclass
class IncomingOptions:
    batch_messages: int = 200
    batch_bytes: int = 16 * 1024 * 1024
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    worker: str | None = None


@dataclass
class IncomingReport:
    mailbox_id: uuid.UUID
    ran: bool = False
    why_not: str = ""
    seen: int = 0
    tracked: int = 0
    failed: int = 0
    error: SyncError | None = None

    def add(self, other: BatchResult) -> None:
        self.seen += other.seen
        self.tracked += other.tracked
        self.failed += other.failed


@dataclass
class BatchResult:
    seen: int = 0
    tracked: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: where it is, its bytes (None when too large to fetch)."""

    folder: str
    uidvalidity: int
    uid: int
    uidl: str | None
    raw: bytes | None
    size: int


def parse_fetched(items: list[Fetched], limits: ParseLimits) -> list[ParsedMessage | Exception]:
    """Parse a batch outside any transaction (CPU only)."""
    results: list[ParsedMessage | Exception] = []
    for item in items:
        if item.raw is None:
            results.append(SyncError(ErrorCode.MESSAGE_TOO_LARGE, f"{item.size} bytes"))
            continue
        try:
            results.append(parse_message(item.raw, limits))
        except MalformedMessage as exc:
            results.append(exc)
    return results


def store_batch(
    session: Session,
    store: Store,
    ctx: MailboxContext,
    items: list[Fetched],
    parsed: list[ParsedMessage | Exception],
) -> BatchResult:
    """Record a fetched batch in the caller's transaction: activities and ledger rows."""
    result = BatchResult()
    mailbox = session.get(Mailbox, ctx.mailbox_id)
    assert mailbox is not None
    now = utcnow()
    for item, outcome in zip(items, parsed, strict=True):
        result.seen += 1
        ref = item.uidl or f"{item.folder}/{item.uidvalidity}/{item.uid}"
        raw_sha = store.blobs.put(session, item.raw) if item.raw is not None else None
        ledger = MailboxMessage(
            mailbox_id=ctx.mailbox_id,
            folder=item.folder,
            uidvalidity=item.uidvalidity,
            uid=item.uid,
            uidl=item.uidl,
            raw_sha256=raw_sha,
        )
        if isinstance(outcome, Exception):
            code = outcome.code if isinstance(outcome, SyncError) else ErrorCode.MALFORMED_MESSAGE
            detail = str(
                getattr(outcome, "detail", None) or getattr(outcome, "reason", None) or outcome
            )
            record_item_failure(
                session, mailbox, Channel.INCOMING, ref, code.value, detail, raw_sha
            )
            ledger.reason = f"{code.value}: {detail}"
            result.failed += 1
            session.add(ledger)
            continue
        ledger.message_id = outcome.message_id
        if _before_cutoff(ctx, outcome, now):
            ledger.reason = "received before the profile's 'process email received after'"
            session.add(ledger)
            continue
        assert raw_sha is not None
        try:
            with session.begin_nested():
                tracked = track(session, store.blobs, ctx, outcome, raw_sha, now)
        except Exception as exc:  # one bad message must not stop the mailbox
            log.exception("incoming: message %s of mailbox %s failed", ref, ctx.mailbox_id)
            record_item_failure(
                session,
                mailbox,
                Channel.INCOMING,
                ref,
                ErrorCode.INTERNAL.value,
                f"{type(exc).__name__}: {exc}"[:2000],
                raw_sha,
            )
            ledger.reason = f"INTERNAL: {type(exc).__name__}"
            result.failed += 1
            session.add(ledger)
            continue
        ledger.email_id, ledger.tracked, ledger.reason = (
            tracked.email_id,
            tracked.tracked,
            tracked.reason,
        )
        result.tracked += int(tracked.tracked)
        session.add(ledger)
    session.flush()
    return result


def _before_cutoff(ctx: MailboxContext, parsed: ParsedMessage, now: datetime) -> bool:
    if ctx.process_email_after is None:
        return False
    return (parsed.date or now) < ctx.process_email_after


def raw_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def sync_incoming(
    store: Store,
    box: SecretBox,
    mailbox_id: uuid.UUID,
    options: IncomingOptions | None = None,
) -> IncomingReport:
    from crmsync.sync.incoming_imap import sync_imap_inbox
    from crmsync.sync.incoming_pop3 import sync_pop3

    options = options or IncomingOptions()
    report = IncomingReport(mailbox_id)
    worker = options.worker or leases.worker_name()
    if not leases.acquire(store, mailbox_id, Channel.INCOMING, worker):
        report.why_not = "another worker is syncing this mailbox"
        return report
    try:
        token_error: SyncError | None = None
        try:
            ensure_access_token(store, box, mailbox_id)
        except SyncError as exc:
            token_error = exc
        with store.transaction() as session:
            ctx = load_context(session, box, mailbox_id, Channel.INCOMING)
        if not ctx.runnable:
            report.why_not = ctx.why_not
            return report
        report.ran = True
        try:
            setup_error = token_error or ctx.plan_error
            if setup_error is not None:
                raise setup_error
            assert ctx.plan is not None
            if ctx.plan.protocol == "pop3":
                sync_pop3(store, ctx, options, report)
            else:
                sync_imap_inbox(store, ctx, options, report)
        except SyncError as exc:
            report.error = exc
        except Exception as exc:  # a bug must not kill the sync loop; it is retried
            log.exception("incoming: mailbox %s failed", mailbox_id)
            report.error = SyncError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"[:500])
        _record_run(store, ctx, report, options)
        return report
    finally:
        leases.release(store, mailbox_id, Channel.INCOMING, worker)


def _record_run(
    store: Store, ctx: MailboxContext, report: IncomingReport, options: IncomingOptions
) -> None:
    now = utcnow()
    with store.transaction() as session:
        mailbox = session.get(Mailbox, ctx.mailbox_id)
        if mailbox is None:
            return
        channel = mailbox.channel(Channel.INCOMING)
        if report.error is None:
            mark_channel_ok(channel, now=now, items=report.tracked)
        else:
            record_failure(
                session, mailbox, channel, report.error, policy=options.retry_policy, now=now
            )
