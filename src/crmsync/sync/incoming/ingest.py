"""The ingest pipeline of incoming mail: fetched batches in, tracked activities out.

    fetched batch ──▶ parser processes (parser_pool) ──▶ one transaction per batch:
    (prefetch: the next batch is       store_batch: ledger rows, item failures, bounce
     fetched meanwhile)                routing, the decision, new activities, attachments
                                       + the engine's ``also`` rows (its cursor)

Run it twice, or after a crash at any line, and the CRM holds each message exactly once:
messages are fetched and prepared outside any transaction, then one short transaction per
batch stores their activities, the mailbox's message ledger and the cursor that covers
them together. A crash before that commit leaves the cursor where it was, and the next
run redoes the batch; the org-wide email key makes a redo link, not duplicate.

A failing message never stops the mailbox: its raw bytes are kept, an item-level
failure says why, and the cursor moves on. Must never open a transaction while fetching
or parsing, or move a cursor in any transaction but the batch's own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import Channel
from crmsync.crm.alerts import record_item_failure
from crmsync.crm.db import table_of, utcnow
from crmsync.crm.inbound import InboundEmail, add_to_queue, insert_emails, store_email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.store import Store
from crmsync.sync.context import MailboxContext
from crmsync.sync.incoming.bounces import handle_bounce
from crmsync.sync.incoming.options import BatchResult, IncomingReport
from crmsync.sync.incoming.parser_pool import (
    Fetched,
    Outcome,
    PendingBatch,
    Ready,
    Unparsed,
    discard_leftovers,
    prepare_fetched,
)
from crmsync.sync.incoming.prefetch import ahead
from crmsync.sync.tracker import (
    Decision,
    create_sender_record,
    decide_message,
    gather,
)
from crmsync.tracking.filters import automation_reason
from crmsync.tracking.parse import ParsedMessage, ParseLimits

log = logging.getLogger(__name__)


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
