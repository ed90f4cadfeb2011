"""Incoming email from a POP3 drop, by UIDL set (RFC 1939 §7).

    list UIDLs ──▶ new = server UIDLs - seen UIDLs ──▶ batches (RETR) ──▶ commit (+seen)
        │                                                    │
        │ none of a non-empty seen set is on the server:     └─ delete after processing
        │ a server migration renumbered them → re-map by        (queue and forward
        │ Message-ID instead of importing everything again)     mailboxes only): DELE
        ▼                                                       after the commit, QUIT,
      remap                                                     then mark deleted

Messages stay on the server by default. Deletion happens only for messages whose
activities are committed; the server applies DELE at QUIT (UPDATE state), so a crash
before QUIT deletes nothing, and a crash after QUIT but before marking leaves rows for
messages the next listing no longer shows — they are marked gone then. A QUIT lost with
the connection deletes nothing and raises nothing (the session's ``quit`` never does),
so rows are marked deleted whose messages the next listing still shows: a processed
message that is listed is deleted again, whatever its row says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.connectors.base import MessageDrop
from crmsync.crm.models.sync_state import Pop3Seen
from crmsync.crm.store import Store
from crmsync.sync.context import MailboxContext, Runnable
from crmsync.sync.incoming.ingest import ingest
from crmsync.sync.incoming.options import IncomingOptions, IncomingReport
from crmsync.sync.incoming.parser_pool import Fetched, Outcome, Ready
from crmsync.tracking.parse import MalformedMessage, ParseLimits, parse_message

FOLDER = "POP3"
# A listing sharing fewer UIDLs than this with a large seen set is a renumbering.
REMAP_OVERLAP = 0.1


def _seen(store: Store, ctx: MailboxContext) -> dict[str, Pop3Seen]:
    with store.transaction() as session:
        rows = session.scalars(select(Pop3Seen).where(Pop3Seen.mailbox_id == ctx.mailbox_id))
        return {row.uidl: row for row in rows}


def sync_pop3(
    store: Store, ctx: Runnable, options: IncomingOptions, report: IncomingReport
) -> None:
    assert ctx.plan.incoming is not None
    limits = ParseLimits(max_bytes=ctx.settings.max_message_bytes)
    with options.open_pop3(ctx.plan.incoming, ctx.plan.credentials) as pop:
        listing = pop.uidl()
        seen = _seen(store, ctx)
        on_server = {uidl for _, uidl in listing}
        live_seen = {uidl for uidl, row in seen.items() if not row.deleted}
        if (
            live_seen
            and listing
            and len(on_server & live_seen) < REMAP_OVERLAP * min(len(live_seen), len(on_server))
        ):
            seen = _remap(store, ctx, pop, listing, seen, limits)
        new = [(number, uidl) for number, uidl in listing if uidl not in seen]

        def remember(session: Session, batch: list[Fetched], outcomes: list[Outcome]) -> None:
            for item, outcome in zip(batch, outcomes, strict=True):
                message_id = outcome.parsed.message_id if isinstance(outcome, Ready) else None
                session.add(
                    Pop3Seen(mailbox_id=ctx.mailbox_id, uidl=item.uidl, message_id=message_id)
                )

        ingest(store, ctx, _batches(pop, ctx, new, options), report, also=remember)
        deleted = _delete_processed(store, ctx, pop, listing) if ctx.delete_after_processing else []
    # The connection has QUIT: the server has applied the DELEs.
    _mark(store, ctx, deleted, gone=on_server)


def _batches(
    pop: MessageDrop, ctx: MailboxContext, new: list[tuple[int, str]], options: IncomingOptions
) -> Iterator[list[Fetched]]:
    stream = iter(new)
    while chunk := list(islice(stream, options.batch_messages)):
        sizes = _sizes(pop, [number for number, _ in chunk])
        yield [
            Fetched(FOLDER, 0, uidl_key(uidl), uidl, pop.retrieve(number, max_size=_cap(ctx)), size)
            for (number, uidl), size in zip(chunk, sizes, strict=True)
        ]


def uidl_key(uidl: str) -> int:
    """A stable 63-bit number for a UIDL, standing in for an IMAP UID in the ledger."""
    return int.from_bytes(hashlib.sha256(uidl.encode()).digest()[:8], "big") >> 1


def _cap(ctx: MailboxContext) -> int:
    return ctx.settings.max_message_bytes


def _sizes(pop: MessageDrop, numbers: list[int]) -> list[int]:
    sizes = pop.list_sizes()
    return [sizes.get(number, 0) for number in numbers]


def _delete_processed(
    store: Store, ctx: MailboxContext, pop: MessageDrop, listing: list[tuple[int, str]]
) -> list[str]:
    seen = _seen(store, ctx)
    deleted = []
    for number, uidl in listing:
        if uidl in seen:  # marked deleted, yet listed: the QUIT that was to delete it was lost
            pop.delete(number)
            deleted.append(uidl)
    return deleted


def _mark(store: Store, ctx: MailboxContext, deleted: list[str], gone: set[str]) -> None:
    with store.transaction() as session:
        rows = session.scalars(
            select(Pop3Seen).where(
                Pop3Seen.mailbox_id == ctx.mailbox_id, Pop3Seen.deleted.is_(False)
            )
        )
        for row in rows:
            if row.uidl in deleted or row.uidl not in gone:
                row.deleted = True


def _remap(
    store: Store,
    ctx: MailboxContext,
    pop: MessageDrop,
    listing: list[tuple[int, str]],
    seen: dict[str, Pop3Seen],
    limits: ParseLimits,
) -> dict[str, Pop3Seen]:
    """Every UIDL changed at once: match messages to what we saw by Message-ID."""
    by_message_id = {row.message_id: row.uidl for row in seen.values() if row.message_id}
    renamed: dict[str, str] = {}
    for number, uidl in listing:
        header = pop.header(number, max_size=limits.max_header_bytes)
        if header is None:
            continue
        try:
            message_id = parse_message(header, limits).message_id
        except MalformedMessage:
            continue
        old = by_message_id.get(message_id or "")
        if old is not None and old not in renamed:
            renamed[old] = uidl
    with store.transaction() as session:
        rows = session.scalars(select(Pop3Seen).where(Pop3Seen.mailbox_id == ctx.mailbox_id))
        for row in rows:
            if row.uidl in renamed:
                row.uidl = renamed[row.uidl]
    return _seen(store, ctx)
