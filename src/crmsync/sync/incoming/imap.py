"""Incoming email from an IMAP folder, by persisted cursor.

A folder's state machine (after closeio/sync-engine's imap/generic.py):

    initial ──(no cursor)──────────────────────────────▶ poll (from UID 1)
    poll ──(UIDVALIDITY as stored)──▶ new UIDs ≥ next_uid ──▶ batches ──▶ poll
      │  (nothing new: UIDNEXT and HIGHESTMODSEQ unchanged → done, one SELECT spent)
      └─(UIDVALIDITY changed)──▶ uidinvalid: re-map the ledger by Message-ID ──▶ poll
              │                   (known messages keep their activities; nothing is
              │                    imported twice, and the new cursor ends the loop)
              └─(already MAX_UIDVALIDITY_RESYNCS times)──▶ stop: UIDVALIDITY_RESYNC_LIMIT

The cap (as closeio/sync-engine's ``MAX_UIDINVALID_RESYNCS``): each re-map lists and
fetches the whole folder, so a server that renumbers a folder on every poll would make
crmsync do that forever. ``FolderCursor.uidvalidity_changes`` counts the re-maps since the
last successful Test & Enable of the incoming channel (which sets it back to 0:
``reset_uidvalidity_resyncs``) — a total, not a rate, so that a slowly misbehaving
server is noticed too. The change after the last allowed one is not re-mapped: the pass
fails with the permanent UIDVALIDITY_RESYNC_LIMIT, which disables the channel and raises
an alert with the catalogue's remediation; the cursor keeps the old UIDVALIDITY, so
nothing is re-mapped or imported until an administrator has looked.

Facts relied on (RFC 3501 §2.3.1.1): UIDs grow within one UIDVALIDITY; a new
UIDVALIDITY invalidates every stored UID, and UIDNEXT not moving past the cursor means
nothing was added. That is all incoming tracking needs, with or without CONDSTORE or
QRESYNC (RFC 7162): flag changes and expunges do not change what was tracked. The
folder's HIGHESTMODSEQ is kept in the cursor for folder tracking, which does need them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from itertools import islice

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crmsync.connectors.base import MailFolderSource
from crmsync.core.alerts import AlertCode
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import Channel
from crmsync.crm.alerts import raise_catalogued
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import FolderCursor, MailboxMessage
from crmsync.crm.store import Store
from crmsync.sync.context import MailboxContext, Runnable
from crmsync.sync.incoming.ingest import ingest
from crmsync.sync.incoming.options import IncomingOptions, IncomingReport
from crmsync.sync.incoming.parser_pool import Fetched, Outcome

INBOX = "INBOX"
# Re-maps allowed per folder between two Test & Enables (closeio/sync-engine uses 5 too).
MAX_UIDVALIDITY_RESYNCS = 5


def sync_imap_inbox(
    store: Store, ctx: Runnable, options: IncomingOptions, report: IncomingReport
) -> None:
    assert ctx.plan.incoming is not None
    with options.open_imap(
        ctx.plan.incoming, ctx.plan.credentials, options.ignore_capabilities
    ) as conn:
        sync_folder(store, ctx, conn, INBOX, options, report)


def _cursor(
    store: Store, ctx: MailboxContext, folder: str
) -> tuple[int, int, int | None, int] | None:
    """``(uidvalidity, next_uid, highestmodseq, uidvalidity_changes)``, or None."""
    with store.transaction() as session:
        cursor = session.scalar(
            select(FolderCursor).where(
                FolderCursor.mailbox_id == ctx.mailbox_id, FolderCursor.folder == folder
            )
        )
        if cursor is None:
            return None
        return (
            cursor.uidvalidity,
            cursor.next_uid,
            cursor.highestmodseq,
            cursor.uidvalidity_changes,
        )


def reset_uidvalidity_resyncs(session: Session, mailbox_id: uuid.UUID) -> None:
    """Allow ``MAX_UIDVALIDITY_RESYNCS`` re-maps again: an administrator's Test & Enable
    passed, so whatever renumbered the folders has been looked at."""
    session.execute(
        update(FolderCursor)
        .where(FolderCursor.mailbox_id == mailbox_id)
        .values(uidvalidity_changes=0)
    )


def sync_folder(
    store: Store,
    ctx: MailboxContext,
    conn: MailFolderSource,
    folder: str,
    options: IncomingOptions,
    report: IncomingReport,
) -> None:
    status = conn.select_folder(folder, readonly=True)
    known = _cursor(store, ctx, folder)
    if known is None:
        _save_cursor(store, ctx, folder, status.uidvalidity, 1, None, new=True)
        next_uid = 1
    elif known[0] != status.uidvalidity:
        if known[3] >= MAX_UIDVALIDITY_RESYNCS:
            raise SyncError(
                ErrorCode.UIDVALIDITY_RESYNC_LIMIT,
                f"folder {folder}: UIDVALIDITY {known[0]} → {status.uidvalidity}, after "
                f"{known[3]} changes since the last Test & Enable; not listed again",
            )
        _remap(store, ctx, conn, folder, status.uidvalidity)
        next_uid = 1
    else:
        next_uid = known[1]
        if status.uidnext <= next_uid:
            # Nothing was added since the last poll: one SELECT spent, nothing fetched.
            _save_cursor(store, ctx, folder, status.uidvalidity, next_uid, status.highestmodseq)
            return
    todo = [uid for uid in conn.uids_after(next_uid - 1) if uid >= next_uid]
    todo = _unprocessed(store, ctx, folder, status.uidvalidity, todo)

    def advance_cursor(session: Session, batch: list[Fetched], _: list[Outcome]) -> None:
        cursor = _load_cursor(session, ctx, folder)
        cursor.next_uid = max(cursor.next_uid, max(item.uid for item in batch) + 1)

    ingest(
        store,
        ctx,
        _batches(conn, todo, folder, status.uidvalidity, ctx, options),
        report,
        also=advance_cursor,
    )
    _save_cursor(store, ctx, folder, status.uidvalidity, status.uidnext, status.highestmodseq)


def _batches(
    conn: MailFolderSource,
    uids: list[int],
    folder: str,
    uidvalidity: int,
    ctx: MailboxContext,
    options: IncomingOptions,
) -> Iterator[list[Fetched]]:
    stream = iter(uids)
    while chunk := list(islice(stream, options.batch_messages)):
        batch: list[Fetched] = []
        size = 0
        for message in conn.fetch_raw(chunk, max_size=ctx.settings.max_message_bytes):
            batch.append(Fetched(folder, uidvalidity, message.uid, None, message.raw, message.size))
            size += len(message.raw or b"")
            if size >= options.batch_bytes:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch


def _load_cursor(session: Session, ctx: MailboxContext, folder: str) -> FolderCursor:
    cursor = session.scalar(
        select(FolderCursor).where(
            FolderCursor.mailbox_id == ctx.mailbox_id, FolderCursor.folder == folder
        )
    )
    assert cursor is not None
    return cursor


def _save_cursor(
    store: Store,
    ctx: MailboxContext,
    folder: str,
    uidvalidity: int,
    next_uid: int,
    modseq: int | None,
    *,
    new: bool = False,
) -> None:
    with store.transaction() as session:
        if new:
            session.add(
                FolderCursor(
                    mailbox_id=ctx.mailbox_id,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    next_uid=next_uid,
                    highestmodseq=modseq,
                )
            )
            return
        cursor = _load_cursor(session, ctx, folder)
        if cursor.uidvalidity == uidvalidity:
            cursor.next_uid = max(cursor.next_uid, next_uid)
            cursor.highestmodseq = modseq


def _unprocessed(
    store: Store, ctx: MailboxContext, folder: str, uidvalidity: int, uids: list[int]
) -> list[int]:
    """Drop UIDs the ledger already has (after a re-map they are known under new UIDs)."""
    if not uids:
        return uids
    with store.transaction() as session:
        done = set(
            session.scalars(
                select(MailboxMessage.uid).where(
                    MailboxMessage.mailbox_id == ctx.mailbox_id,
                    MailboxMessage.folder == folder,
                    MailboxMessage.uidvalidity == uidvalidity,
                    MailboxMessage.uid >= min(uids),
                )
            )
        )
    return [uid for uid in uids if uid not in done]


def _remap(
    store: Store, ctx: MailboxContext, conn: MailFolderSource, folder: str, uidvalidity: int
) -> None:
    """UIDVALIDITY changed: find known messages under their new UIDs by Message-ID."""
    metas = conn.fetch_meta(conn.all_uids())
    new_uid_of = {meta.message_id: meta.uid for meta in metas if meta.message_id}
    with store.transaction() as session:
        rows = session.scalars(
            select(MailboxMessage).where(
                MailboxMessage.mailbox_id == ctx.mailbox_id,
                MailboxMessage.folder == folder,
                MailboxMessage.uidvalidity != uidvalidity,
                MailboxMessage.message_id.is_not(None),
            )
        )
        taken: set[int] = set()
        for row in rows:
            uid = new_uid_of.get(row.message_id or "")
            if uid is not None and uid not in taken:
                row.uidvalidity, row.uid = uidvalidity, uid
                taken.add(uid)
        cursor = _load_cursor(session, ctx, folder)
        old = cursor.uidvalidity
        cursor.uidvalidity, cursor.next_uid, cursor.highestmodseq = uidvalidity, 1, None
        cursor.uidvalidity_changes += 1
        mailbox = session.get(Mailbox, ctx.mailbox_id)
        assert mailbox is not None
        raise_catalogued(
            session,
            AlertCode.UIDVALIDITY_CHANGED,
            organisation_id=ctx.organisation_id,
            detail=f"UIDVALIDITY {old} → {uidvalidity}; {len(taken)} known messages re-mapped.",
            folder=folder,
            mailbox=mailbox,
            channel=Channel.INCOMING,
            now=utcnow(),
        )
