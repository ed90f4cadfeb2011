"""``store_batch`` where the state machine does not go: what a batch keeps of a message no
parser reads, a batch redone after a crash with attachments already published, and a
batch whose messages another worker stored after this one looked them up.

On both stores; messages are prepared in this process (parser_pool's one-core path).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.connectors.memory import MemoryMailServer
from crmsync.core.errors import ErrorCode
from crmsync.crm.models import Attachment, FolderCursor, ItemFailure, MailboxMessage
from crmsync.sync.context import mailbox_context
from crmsync.sync.incoming import ingest as incoming_ingest
from crmsync.sync.incoming import parser_pool
from crmsync.sync.incoming.ingest import store_batch
from crmsync.sync.incoming.parser_pool import Fetched, Outcome, discard_leftovers, prepare_fetched
from crmsync.tracking.decide import Known
from crmsync.tracking.parse import ParseLimits
from tests.conftest import Org
from tests.unit.sync.incoming.mail_world import MailWorld, sha256


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_pool._pool, "get", lambda: None)


@pytest.fixture
def world(org: Org) -> MailWorld:
    return MailWorld(org, MemoryMailServer(), ("a", "b"))


def with_attachment(world: MailWorld, number: int) -> bytes:
    return (
        f"From: c{number}@fabrikam.example\r\nTo: {world.boxes['a'].address}\r\n"
        f"Subject: Quote {number}\r\nMessage-ID: {world.message_id(number)}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nThe quote is attached.\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        f'Content-Disposition: attachment; filename="quote-{number}.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nUERGLWRhdGE=\r\n--b--\r\n"
    ).encode()


def prepared(world: MailWorld, raws: list[bytes]) -> tuple[list[Fetched], list[Outcome]]:
    items = [Fetched("INBOX", 7, uid, None, raw, len(raw)) for uid, raw in enumerate(raws, start=1)]
    return items, prepare_fetched(items, ParseLimits(), world.store.blobs.root).outcomes()


def store(world: MailWorld, name: str, items: list[Fetched], outcomes: list[Outcome]) -> Any:
    with world.store.transaction() as session:
        ctx = mailbox_context(session, world.boxes[name].mailbox_id)
    try:
        with world.store.transaction() as session:
            return store_batch(session, world.store, ctx, items, outcomes)
    finally:
        discard_leftovers(world.store.blobs.root, outcomes)


def ledger_of(session: Session, world: MailWorld, name: str) -> list[MailboxMessage]:
    mailbox_id = world.boxes[name].mailbox_id
    found = select(MailboxMessage).where(MailboxMessage.mailbox_id == mailbox_id)
    return sorted(session.scalars(found), key=lambda row: row.uid)


def test_an_unparseable_message_keeps_its_bytes_and_a_failure_and_the_cursor_moves_on(
    world: MailWorld,
) -> None:
    bad = world.malformed(2)
    for raw in (world.message(1, ["a"]), bad, world.message(3, ["a"])):
        world.inbox("a").deliver(raw)

    report = world.sync("a", batch_messages=3)  # one batch

    assert (report.error, report.seen, report.tracked, report.failed) == (None, 3, 2, 1)
    with world.store.transaction() as session:
        rows = ledger_of(session, world, "a")
        assert [(row.uid, row.tracked) for row in rows] == [(1, True), (2, False), (3, True)]
        assert rows[1].raw_sha256 == sha256(bad)
        assert rows[1].reason.startswith("MALFORMED_MESSAGE")
        failure = session.scalars(
            select(ItemFailure).where(ItemFailure.mailbox_id == world.boxes["a"].mailbox_id)
        ).one()
        assert (failure.code, failure.raw_sha256) == (
            ErrorCode.MALFORMED_MESSAGE.value,
            sha256(bad),
        )
        assert failure.item_ref == f"INBOX/{world.inbox('a').uidvalidity}/2"
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == world.boxes["a"].mailbox_id)
        ).one()
        assert cursor.next_uid == 4
    assert world.store.blobs.get(sha256(bad)) == bad  # kept, to be tracked by hand or redone

    bodies = world.server.calls["fetch_body"]
    assert world.sync("a").error is None
    assert world.server.calls["fetch_body"] == bodies  # not fetched again


def test_a_batch_redone_after_a_crash_is_stored_once_with_its_attachments(
    world: MailWorld,
) -> None:
    raws = [with_attachment(world, 1), with_attachment(world, 2)]
    items, outcomes = prepared(world, raws)
    with world.store.transaction() as session:
        ctx = mailbox_context(session, world.boxes["a"].mailbox_id)

    class Crash(BaseException):
        pass

    def store_and_die() -> None:
        with world.store.transaction() as session:
            store_batch(session, world.store, ctx, items, outcomes)
            raise Crash

    # The worker dies after store_batch, before the commit: its attachments were published.
    with pytest.raises(Crash):
        store_and_die()
    discard_leftovers(world.store.blobs.root, outcomes)
    with world.store.transaction() as session:
        assert world.emails(session) == {}
        assert ledger_of(session, world, "a") == []

    redo = store(world, "a", *prepared(world, raws))

    assert (redo.tracked, redo.failed) == (2, 0)
    with world.store.transaction() as session:
        emails = world.emails(session)
        assert sorted(emails.values()) == [world.message_id(1), world.message_id(2)]
        assert [row.email_id in emails for row in ledger_of(session, world, "a")] == [True, True]
        attachments = list(
            session.scalars(select(Attachment).where(Attachment.activity_id.in_(emails)))
        )
    assert len(attachments) == 2
    assert {world.store.blobs.get(a.blob_sha256) for a in attachments} == {b"PDF-data"}


def test_messages_another_worker_stored_after_the_lookup_are_linked_not_duplicated(
    world: MailWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL two workers' transactions interleave so: a looks its batch up (nothing
    # is stored), b stores the same messages and commits, a inserts. Replaying a's lookup
    # after b's commit gives that interleaving on SQLite too.
    raws = [world.message(1, ["a", "b"]), world.message(2, ["a", "b"], message_id=False)]
    real_gather = incoming_ingest.gather
    lookups: list[Known] = []

    class LookedUp(Exception):
        pass

    def look_up_only(*args: Any, **kwargs: Any) -> Known:
        lookups.append(copy.deepcopy(real_gather(*args, **kwargs)))
        raise LookedUp

    monkeypatch.setattr(incoming_ingest, "gather", look_up_only)
    with pytest.raises(LookedUp):
        store(world, "a", *prepared(world, raws))
    monkeypatch.setattr(incoming_ingest, "gather", real_gather)
    assert store(world, "b", *prepared(world, raws)).tracked == 2
    monkeypatch.setattr(incoming_ingest, "gather", lambda *args, **kwargs: lookups[0])

    a = store(world, "a", *prepared(world, raws))

    assert (a.tracked, a.failed) == (2, 0)
    with world.store.transaction() as session:
        emails = world.emails(session)
        links = [[row.email_id for row in ledger_of(session, world, name)] for name in "ab"]
    assert len(emails) == 2
    assert links[0] == links[1]
    assert set(links[0]) == set(emails)
