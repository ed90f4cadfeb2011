"""The cap on UIDVALIDITY re-maps: a folder renumbered again and again stops the channel.

The incoming pass runs on a migrated store against the in-memory mail server, whose
INBOX (empty) is given a new UIDVALIDITY before every pass (a server gone wrong), so
the count of re-maps is what changes from pass to pass. Re-mapping against the real
Dovecot is in tests/integration/test_incoming.py; the reset by Test & Enable in
tests/integration/test_server_quirks.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from crmsync.connectors.memory import MemoryFolder, MemoryMailServer
from crmsync.core.errors import ErrorCode
from crmsync.core.types import Channel
from crmsync.crm.models import Alert, FolderCursor, Mailbox
from crmsync.crm.secrets import SecretBox
from crmsync.sync.incoming import IncomingOptions, IncomingReport, sync_incoming
from crmsync.sync.incoming.imap import MAX_UIDVALIDITY_RESYNCS, reset_uidvalidity_resyncs
from tests.conftest import Org
from tests.unit.sync.mailboxes import runnable_imap_mailbox


@dataclass
class Renumbering:
    """An empty INBOX renumbered before every pass; ``listings`` counts whole-folder
    listings, which is what each re-map costs."""

    server: MemoryMailServer
    inbox: MemoryFolder

    @property
    def listings(self) -> int:
        return self.server.calls["all_uids"]

    def sync(self, org: Org, box: SecretBox, mailbox_id: uuid.UUID) -> IncomingReport:
        self.inbox.renumber()
        options = IncomingOptions(open_imap=self.server.open_imap)
        return sync_incoming(org.store, box, mailbox_id, options)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretBox.generate_key()])


@pytest.fixture
def folder() -> Renumbering:
    server = MemoryMailServer()
    return Renumbering(server, server.add_account("ann", "secret").inbox)


def _changes(org: Org, mailbox_id: uuid.UUID) -> int:
    with org.store.transaction() as session:
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == mailbox_id)
        ).one()
        return cursor.uidvalidity_changes


def test_a_folder_renumbered_too_often_stops_the_channel_with_an_alert(
    org: Org, box: SecretBox, folder: Renumbering
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box)
    first = folder.sync(org, box, mailbox_id)  # the cursor is born
    assert first.error is None
    for done in range(1, MAX_UIDVALIDITY_RESYNCS + 1):
        report = folder.sync(org, box, mailbox_id)
        assert report.error is None, report.error
        assert _changes(org, mailbox_id) == done
    assert folder.listings == MAX_UIDVALIDITY_RESYNCS

    stopped = folder.sync(org, box, mailbox_id)
    assert stopped.error is not None
    assert stopped.error.code is ErrorCode.UIDVALIDITY_RESYNC_LIMIT
    assert folder.listings == MAX_UIDVALIDITY_RESYNCS  # not listed a sixth time
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        channel = mailbox.channel(Channel.INCOMING)
        assert channel.enabled is False
        assert channel.last_error_code == "UIDVALIDITY_RESYNC_LIMIT"
        alert = session.scalars(
            select(Alert).where(
                Alert.mailbox_id == mailbox_id, Alert.code == "UIDVALIDITY_RESYNC_LIMIT"
            )
        ).one()
        assert "Test & Enable" in alert.remediation
        assert "renumbering" in alert.title
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == mailbox_id)
        ).one()
        # The cursor still holds the last UIDVALIDITY it synced under: nothing moved.
        assert cursor.uidvalidity == folder.inbox.uidvalidity - 1


def test_after_the_reset_re_maps_are_allowed_again(
    org: Org, box: SecretBox, folder: Renumbering
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box)
    for _ in range(MAX_UIDVALIDITY_RESYNCS + 2):
        folder.sync(org, box, mailbox_id)
    assert _changes(org, mailbox_id) == MAX_UIDVALIDITY_RESYNCS
    with org.store.transaction() as session:  # what a passing Test & Enable does
        reset_uidvalidity_resyncs(session, mailbox_id)
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        mailbox.channel(Channel.INCOMING).enabled = True
    report = folder.sync(org, box, mailbox_id)
    assert report.error is None, report.error
    assert _changes(org, mailbox_id) == 1
