"""``sync_incoming(mailbox_id)``: the unit of incoming work, idempotent and crash-safe.

    lease ──▶ gather context ──▶ connect ──▶ IMAP folder / POP3 drop ──▶ release lease
     │ busy: another worker has it → return at once
     └ not runnable (not approved, disabled, method none) → return, nothing touched

Run it twice, or after a crash at any line, and the CRM holds each message exactly once:
messages are fetched and prepared outside any transaction — a fetch thread runs ahead
(sync/overlap.py) and parser processes parse them (sync/prepare.py) — then one short
transaction per batch (``store_batch``) stores their activities, the mailbox's message
ledger and the cursor that covers them together. A crash before that commit leaves the
cursor where it was, and the next run redoes the batch; the org-wide email key makes a
redo link, not duplicate.

A failing message never stops the mailbox: its raw bytes are kept, an item-level
failure says why, and the cursor moves on. A failing connection is a channel failure
(crmsync.sync.health: retry transient errors with backoff, disable on permanent ones).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import Channel, Protocol
from crmsync.crm.alerts import mark_channel_ok, record_item_failure
from crmsync.crm.db import table_of, utcnow
from crmsync.crm.inbound import InboundEmail, add_to_queue, insert_emails, store_email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.secrets import SecretBox
from crmsync.crm.stats import PassFigures, channel_protocol, record_pass
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics, profile_label
from crmsync.sync import leases
from crmsync.sync.bounces import handle_bounce
from crmsync.sync.context import MailboxContext, load_context
from crmsync.sync.health import record_failure
from crmsync.sync.oauth_tokens import token_problem
from crmsync.sync.overlap import ahead
from crmsync.sync.prepare import (
    Fetched,
    Outcome,
    PendingBatch,
    Ready,
    Unparsed,
    discard_leftovers,
    prepare_fetched,
)
from crmsync.sync.tracker import (
    Decision,
    create_sender_record,
    decide_message,
    gather,
)
from crmsync.tracking.filters import automation_reason
from crmsync.tracking.parse import ParsedMessage, ParseLimits

log = logging.getLogger(__name__)


@dataclass
class IncomingOptions:
    batch_messages: int = 200
    batch_bytes: int = 16 * 1024 * 1024
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    worker: str | None = None
    # Capabilities to treat as absent (a server quirk, or a test of the fallback path).
    ignore_capabilities: tuple[str, ...] = ()
    # This process's Prometheus counters (crmsync.metrics), when it exposes them.
    metrics: SyncMetrics | None = None
    # When the server's IDLE notice that triggered this pass came (its push latency).
    pushed_at: datetime | None = None


@dataclass
class IncomingReport:
    mailbox_id: uuid.UUID
    ran: bool = False
    why_not: str = ""
    seen: int = 0
    tracked: int = 0
    failed: int = 0
    bounced: int = 0  # bounces of CRM email, which marked the original bounced
    error: SyncError | None = None
    started_at: datetime = field(default_factory=utcnow)

    def add(self, other: BatchResult) -> None:
        self.seen += other.seen
        self.tracked += other.tracked
        self.failed += other.failed
        self.bounced += other.bounced


@dataclass
class BatchResult:
    seen: int = 0
    tracked: int = 0
    failed: int = 0
    bounced: int = 0


def store_batch(
    session: Session,
    store: Store,
    ctx: MailboxContext,
    items: list[Fetched],
    outcomes: list[Outcome],
) -> BatchResult:
    """Record a prepared batch in the caller's transaction: activities and ledger rows.

    Every blob the batch refers to is durable when this returns (one filesystem sync),
    so the caller's commit never refers to bytes a crash could lose.
    """
    result = BatchResult(seen=len(items))
    mailbox = session.get(Mailbox, ctx.mailbox_id)
    assert mailbox is not None
    now = utcnow()
    store.blobs.record(
        session,
        {
            outcome.raw_sha256: len(item.raw)
            for item, outcome in zip(items, outcomes, strict=True)
            if item.raw is not None and not isinstance(outcome, SyncError)
        },
    )
    ledgers: list[dict[str, object]] = []
    candidates: list[tuple[int, Ready]] = []
    for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
        sha = None if isinstance(outcome, SyncError) else outcome.raw_sha256
        ledger: dict[str, object] = {
            "id": uuid.uuid4(),
            "mailbox_id": ctx.mailbox_id,
            "folder": item.folder,
            "uidvalidity": item.uidvalidity,
            "uid": item.uid,
            "uidl": item.uidl,
            "raw_sha256": sha,
            "message_id": None,
            "email_id": None,
            "tracked": False,
            "reason": "",
        }
        ledgers.append(ledger)
        if not isinstance(outcome, Ready):
            code, detail = _failure(outcome)
            ref = item.uidl or f"{item.folder}/{item.uidvalidity}/{item.uid}"
            record_item_failure(session, mailbox, Channel.INCOMING, ref, code.value, detail, sha)
            ledger["reason"] = f"{code.value}: {detail}"
            result.failed += 1
            continue
        ledger["message_id"] = outcome.parsed.message_id
        if _before_cutoff(ctx, outcome.parsed, now):
            ledger["reason"] = "received before the profile's 'process email received after'"
            continue
        candidates.append((index, outcome))

    gathered = gather(session, ctx, [(ready.parsed, ready.raw_sha256) for _, ready in candidates])
    new: list[tuple[uuid.UUID, InboundEmail, str]] = []
    for index, ready in candidates:
        ledger = ledgers[index]
        ref = items[index].uidl or f"{items[index].folder}/{items[index].uid}"
        message, sha = ready.parsed, ready.raw_sha256
        try:
            if automation_reason(message) == "bounce":
                with session.begin_nested():
                    if handle_bounce(session, store.blobs, ctx, message, sha, now=now):
                        ledger["reason"] = "bounce of a CRM email: the original marked bounced"
                        result.bounced += 1
                        continue
            decision = decide_message(ctx, ready, gathered, now)
            if decision.create_for_sender:
                with session.begin_nested():
                    made = create_sender_record(session, ctx, message, gathered)
                decision = decide_message(ctx, ready, gathered, now)
                decision = Decision(
                    f"{decision.reason}; created a {made.value} for the sender",
                    inbound=decision.inbound,
                    email_id=decision.email_id,
                )
        except Exception as exc:  # one bad message must not stop the mailbox
            log.exception("incoming: message %s of mailbox %s failed", ref, ctx.mailbox_id)
            record_item_failure(
                session,
                mailbox,
                Channel.INCOMING,
                ref,
                ErrorCode.INTERNAL.value,
                f"{type(exc).__name__}: {exc}"[:2000],
                sha,
            )
            ledger["reason"] = f"INTERNAL: {type(exc).__name__}"
            result.failed += 1
            continue
        ledger["reason"] = decision.reason
        if decision.email_id is not None:
            ledger["email_id"], ledger["tracked"] = decision.email_id, True
            add_to_queue(session, ctx.queue_id, decision.email_id)
        elif decision.inbound is not None:
            email_id = uuid.uuid4()
            new.append((email_id, decision.inbound, sha))
            gathered.planned(decision.inbound, email_id)
            ledger["email_id"], ledger["tracked"] = email_id, True
        result.tracked += int(bool(ledger["tracked"]))
    staged = {
        sha: name
        for _, ready in candidates
        for sha, name in zip(ready.attachment_sha256, ready.attachment_staged, strict=True)
    }
    _store_attachments(session, store, new, staged)
    store.blobs.sync()  # raw and attachment files, before the commit that refers to them
    _insert(session, store, new, ledgers)
    return result


def _failure(outcome: Unparsed | SyncError) -> tuple[ErrorCode, str]:
    if isinstance(outcome, SyncError):
        return outcome.code, outcome.detail or str(outcome)
    error = outcome.error
    return ErrorCode.MALFORMED_MESSAGE, error.detail or error.reason


def _store_attachments(
    session: Session,
    store: Store,
    new: list[tuple[uuid.UUID, InboundEmail, str]],
    staged: dict[str, str],
) -> None:
    """Publish the kept attachments of the new emails (not yet durable) and add their rows.

    The staged files of everything else are removed after the batch (discard_leftovers).
    """
    sizes: dict[str, int] = {}
    for _, inbound, _ in new:
        for attachment in inbound.attachments:
            if attachment.sha256 not in sizes:
                store.blobs.publish(staged[attachment.sha256], attachment.sha256)
                sizes[attachment.sha256] = attachment.size
    store.blobs.record(session, sizes)


def _insert(
    session: Session,
    store: Store,
    new: list[tuple[uuid.UUID, InboundEmail, str]],
    ledgers: list[dict[str, object]],
) -> None:
    try:
        with session.begin_nested():
            insert_emails(session, new)
    except IntegrityError:
        # Another worker stored some of these messages meanwhile: one by one, linking.
        renamed: dict[object, uuid.UUID] = {}
        for email_id, inbound, sha in new:
            email, _ = store_email(session, store.blobs, inbound, sha)
            renamed[email_id] = email.id
        for ledger in ledgers:
            ledger["email_id"] = renamed.get(ledger["email_id"], ledger["email_id"])
    session.execute(insert(table_of(MailboxMessage)), ledgers)


def ingest(
    store: Store,
    ctx: MailboxContext,
    batches: Iterator[list[Fetched]],
    report: IncomingReport,
    *,
    also: Callable[[Session, list[Fetched], list[Outcome]], None],
) -> None:
    """Store fetched batches, each in a transaction of its own with ``also``'s rows (the
    folder cursor, the UIDL ledger); the next batches are fetched and prepared meanwhile
    (sync/overlap.py, sync/prepare.py)."""
    limits = ParseLimits(max_bytes=ctx.settings.max_message_bytes)

    def start(batch: list[Fetched]) -> PendingBatch:
        return prepare_fetched(batch, limits, store.blobs.root)

    for pending in ahead(batches, start, abandon=PendingBatch.abandon):
        batch, outcomes = pending.items, pending.outcomes()
        try:
            with store.transaction() as session:
                result = store_batch(session, store, ctx, batch, outcomes)
                also(session, batch, outcomes)
        finally:
            discard_leftovers(store.blobs.root, outcomes)
        report.add(result)


def _before_cutoff(ctx: MailboxContext, parsed: ParsedMessage, now: datetime) -> bool:
    if ctx.process_email_after is None:
        return False
    return (parsed.date or now) < ctx.process_email_after


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
        token_error = token_problem(store, box, mailbox_id)
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
            if ctx.plan.protocol is Protocol.POP3:
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
    """The pass's outcome: the channel's health and the pass's statistics, together; then
    this process's counters, once the transaction has committed."""
    now = utcnow()
    with store.transaction() as session:
        mailbox = session.get(Mailbox, ctx.mailbox_id)
        if mailbox is None:
            return
        channel = mailbox.channel(Channel.INCOMING)
        profile = mailbox.profile
        server_type = profile.server_type if profile is not None else None
        protocol = ctx.plan.protocol.value if ctx.plan is not None else None
        protocol = protocol or channel_protocol(server_type, Channel.INCOMING)
        label = profile_label(profile.name if profile is not None else None, mailbox.profile_id)
        figures = PassFigures(
            protocol=protocol,
            started_at=report.started_at,
            fetched=report.seen,
            tracked=report.tracked,
            failed=report.failed,
            pushed_at=options.pushed_at,
            error_code=report.error.code.value if report.error is not None else None,
        )
        previous = channel.last_success_at
        stats = record_pass(
            session, mailbox, Channel.INCOMING, figures, previous_success=previous, now=now
        )
        if report.error is None:
            mark_channel_ok(channel, now=now, items=report.tracked)
        else:
            record_failure(
                session, mailbox, channel, report.error, policy=options.retry_policy, now=now
            )
    _log_pass(ctx, report, protocol, stats.duration_seconds)
    if options.metrics is not None:
        options.metrics.incoming_pass(
            protocol=protocol,
            profile=label,
            seconds=stats.duration_seconds,
            ok=report.error is None,
            fetched=report.seen,
            tracked=report.tracked,
            failed=report.failed,
            bounced=report.bounced,
            push_latency=stats.push_latency_seconds,
        )


def _log_pass(ctx: MailboxContext, report: IncomingReport, protocol: str, seconds: float) -> None:
    """The operator's line for the pass: counts, duration and the error's code — never
    the error's detail (a server's text may quote an address or a subject)."""
    folder = "INBOX" if protocol == Protocol.IMAP else protocol.upper()
    code = report.error.code.value if report.error is not None else None
    who = ctx.address or str(ctx.mailbox_id)
    log.log(
        logging.WARNING if code else logging.INFO,
        "%s %s: %d fetched, %d tracked, %d failed%s in %.2f s%s",
        who,
        folder,
        report.seen,
        report.tracked,
        report.failed,
        f", {report.bounced} bounced" if report.bounced else "",
        seconds,
        f", error {code}" if code else "",
        extra={
            "event": "incoming_pass",
            "mailbox_id": str(ctx.mailbox_id),
            "mailbox": ctx.address,
            "protocol": protocol,
            "folder": folder,
            "fetched": report.seen,
            "tracked": report.tracked,
            "failed": report.failed,
            "bounced": report.bounced,
            "duration_s": round(seconds, 3),
            "error_code": code,
        },
    )
