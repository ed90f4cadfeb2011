"""The ingest pipeline of incoming mail: fetched batches in, tracked activities out.

    fetched batch ──▶ parser processes (parser_pool) ──▶ one transaction per batch:
    (prefetch: the next batch is       store_batch, + the engine's ``also`` rows (cursor)
     fetched meanwhile)

    store_batch   gather   what the database knows of the batch (``gather``), and for a
                           bounce the CRM email it reports on (``bounces``)
                  decide   each message's fate, in order (crmsync.tracking.decide via
                           ``fates``): skip, link, bounce or track, with its Why
                  execute  ledger rows (the Why's sentence), item failures, the bounce
                           marked, new emails in bulk (crmsync.crm.inbound), attachments

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
from sqlalchemy.orm import Session

from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import Automation, Channel, TrackRule
from crmsync.core.why import Why
from crmsync.crm.alerts import record_item_failure
from crmsync.crm.db import table_of, utcnow
from crmsync.crm.inbound import NewEmail, Stored, add_to_queue, store_emails
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.store import Store
from crmsync.sync.context import MailboxContext
from crmsync.sync.incoming import bounces
from crmsync.sync.incoming.fates import decide_message, inbound_email, message_of, policy_of
from crmsync.sync.incoming.gather import gather
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
from crmsync.tracking.decide import (
    Bounce,
    Fate,
    Known,
    Link,
    Message,
    Policy,
    Track,
    before_cutoff,
    decide,
)
from crmsync.tracking.filters import automation_reason
from crmsync.tracking.parse import ParseLimits

log = logging.getLogger(__name__)
UNTRACKED = Why(TrackRule.UNTRACKED_BY_PERSON)  # a key tombstoned while the batch ran


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
    candidates: list[tuple[int, Ready, Message]] = []
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
        candidates.append((index, outcome, message_of(outcome)))

    policy = policy_of(ctx)
    # What is received before the cut-off is decided without looking anything up.
    wanted = [m for _, _, m in candidates if not before_cutoff(m.parsed, policy, now)]
    known = gather(session, ctx.organisation_id, policy.correlation, wanted)
    new: list[NewEmail] = []
    for index, ready, message in candidates:
        ledger = ledgers[index]
        ref = items[index].uidl or f"{items[index].folder}/{items[index].uid}"
        try:
            fate = _decide(session, store, ctx, policy, message, known, now)
        except Exception as exc:  # one bad message must not stop the mailbox
            log.exception("incoming: message %s of mailbox %s failed", ref, ctx.mailbox_id)
            record_item_failure(
                session,
                mailbox,
                Channel.INCOMING,
                ref,
                ErrorCode.INTERNAL.value,
                f"{type(exc).__name__}: {exc}"[:2000],
                message.raw_sha256,
            )
            ledger["reason"] = f"INTERNAL: {type(exc).__name__}"
            result.failed += 1
            continue
        ledger["reason"] = fate.why.sentence()
        if isinstance(fate, Bounce):
            result.bounced += 1
        elif isinstance(fate, Link):
            ledger["email_id"], ledger["tracked"] = fate.email_id, True
            add_to_queue(session, fate.queue_id, fate.email_id)
        elif isinstance(fate, Track):
            email_id = uuid.uuid4()
            new.append(NewEmail(email_id, inbound_email(ctx, ready, fate), message.raw_sha256))
            known.plan(message, fate, email_id)
            ledger["email_id"], ledger["tracked"] = email_id, True
        result.tracked += int(bool(ledger["tracked"]))
    staged = {
        sha: name
        for _, ready, _ in candidates
        for sha, name in zip(ready.attachment_sha256, ready.attachment_staged, strict=True)
    }
    _store_attachments(session, store, new, staged)
    store.blobs.sync()  # raw and attachment files, before the commit that refers to them
    result.tracked -= _store(session, new, ledgers)
    return result


def _decide(
    session: Session,
    store: Store,
    ctx: MailboxContext,
    policy: Policy,
    message: Message,
    known: Known,
    now: datetime,
) -> Fate:
    """The message's fate; a bounce of a CRM email marks that email (both in a
    savepoint, so a bounce that breaks half-way leaves nothing behind)."""
    parsed = message.parsed
    if automation_reason(parsed) is not Automation.BOUNCE or before_cutoff(parsed, policy, now):
        return decide_message(session, ctx, policy, message, known, now)
    with session.begin_nested():
        bounced = bounces.find_bounced(session, store.blobs, ctx, parsed, message.raw_sha256)
        bounce_of = bounced.original.id if bounced is not None else None
        fate = decide(message, known, policy, now, bounce_of=bounce_of)
        if isinstance(fate, Bounce) and bounced is not None:
            bounces.mark(session, ctx, bounced, now)
    return fate


def _failure(outcome: Unparsed | SyncError) -> tuple[ErrorCode, str]:
    if isinstance(outcome, SyncError):
        return outcome.code, outcome.detail or str(outcome)
    error = outcome.error
    return ErrorCode.MALFORMED_MESSAGE, error.detail or error.reason


def _store_attachments(
    session: Session, store: Store, new: list[NewEmail], staged: dict[str, str]
) -> None:
    """Publish the kept attachments of the new emails (not yet durable) and add their rows.

    The staged files of everything else are removed after the batch (discard_leftovers).
    """
    sizes: dict[str, int] = {}
    for email in new:
        for attachment in email.inbound.attachments:
            if attachment.sha256 not in sizes:
                store.blobs.publish(staged[attachment.sha256], attachment.sha256)
                sizes[attachment.sha256] = attachment.size
    store.blobs.record(session, sizes)


def _store(session: Session, new: list[NewEmail], ledgers: list[dict[str, object]]) -> int:
    """The new emails, then the ledger rows pointing at where each went: another
    worker's copy of the message, or nowhere when a person untracked it meanwhile (the
    ledger then says so). Returns how many were left out that way."""
    where: dict[object, Stored] = {
        email.email_id: stored
        for email, stored in zip(new, store_emails(session, new), strict=True)
    }
    left_out = 0
    for ledger in ledgers:
        stored = where.get(ledger["email_id"])
        if stored is None or stored.created:
            continue
        ledger["email_id"] = stored.email_id
        if stored.email_id is None:
            ledger["tracked"], ledger["reason"] = False, UNTRACKED.sentence()
            left_out += 1
    session.execute(insert(table_of(MailboxMessage)), ledgers)
    return left_out


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
