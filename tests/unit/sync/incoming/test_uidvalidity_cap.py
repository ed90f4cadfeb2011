"""The cap on UIDVALIDITY re-maps: a folder renumbered again and again stops the channel.

The incoming pass runs on a migrated store with a scripted folder in place of the IMAP
connection (``RenumberingFolder``: empty, a new UIDVALIDITY at every SELECT), so the
count of re-maps is what changes from pass to pass. Re-mapping against the real Dovecot
is in tests/integration/test_incoming.py; the reset by Test & Enable in
tests/integration/test_server_quirks.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Self

import pytest
from sqlalchemy import select

from crmsync.connectors.base import FolderStatus, MessageMeta, RawMessage
from crmsync.core.errors import ErrorCode
from crmsync.core.types import Approval, Channel, ConnectionSecurity, ServerType
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Alert, EmailServerProfile, FolderCursor, Mailbox, User
from crmsync.crm.secrets import SecretBox
from crmsync.sync.incoming import IncomingOptions, sync_incoming
from crmsync.sync.incoming import imap as incoming_imap
from crmsync.sync.incoming.imap import MAX_UIDVALIDITY_RESYNCS, reset_uidvalidity_resyncs
from tests.conftest import Org


class RenumberingFolder:
    """An empty INBOX whose UIDVALIDITY is new at every SELECT (a server gone wrong)."""

    def __init__(self) -> None:
        self.uidvalidity = 1000
        self.selects = 0
        self.listings = 0  # whole-folder listings: what each re-map costs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus:
        self.selects += 1
        self.uidvalidity += 1
        return FolderStatus(self.uidvalidity, 1, 0, None)

    def all_uids(self) -> list[int]:
        self.listings += 1
        return []

    def uids_after(self, last_uid: int) -> list[int]:
        return []

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        return []

    def fetch_raw(self, uids: Iterable[int], *, max_size: int | None) -> Iterator[RawMessage]:
        return iter(())


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretBox.generate_key()])


@pytest.fixture
def folder(monkeypatch: pytest.MonkeyPatch) -> RenumberingFolder:
    scripted = RenumberingFolder()

    def open_scripted(*args: Any, **kwargs: Any) -> RenumberingFolder:
        return scripted

    monkeypatch.setattr(incoming_imap.ImapConnection, "open", open_scripted)
    return scripted


def _mailbox(org: Org, box: SecretBox) -> uuid.UUID:
    """An approved mailbox with its incoming channel enabled, on an IMAP profile."""
    with org.store.transaction() as session:
        profile = EmailServerProfile(
            organisation_id=org.organisation_id,
            owner_id=org.admin_id,
            owning_business_unit_id=org.root_unit_id,
            name="IMAP",
            server_type=ServerType.IMAP_SMTP,
            incoming_host="imap.example.test",
            incoming_port=993,
            incoming_security=ConnectionSecurity.IMPLICIT_TLS,
        )
        session.add(profile)
        user = session.get(User, org.add_user(session, "ann"))
        mailbox = create_mailbox_for(session, user=user)
        mailbox.profile = profile
        mailbox.username = "ann"
        mailbox.password_ciphertext = box.encrypt("secret")
        mailbox.approval = Approval.APPROVED
        mailbox.channel(Channel.INCOMING).enabled = True
        session.flush()
        return mailbox.id


def _changes(org: Org, mailbox_id: uuid.UUID) -> int:
    with org.store.transaction() as session:
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == mailbox_id)
        ).one()
        return cursor.uidvalidity_changes


def test_a_folder_renumbered_too_often_stops_the_channel_with_an_alert(
    org: Org, box: SecretBox, folder: RenumberingFolder
) -> None:
    mailbox_id = _mailbox(org, box)
    options = IncomingOptions()
    first = sync_incoming(org.store, box, mailbox_id, options)  # the cursor is born
    assert first.error is None
    for done in range(1, MAX_UIDVALIDITY_RESYNCS + 1):
        report = sync_incoming(org.store, box, mailbox_id, options)
        assert report.error is None, report.error
        assert _changes(org, mailbox_id) == done
    assert folder.listings == MAX_UIDVALIDITY_RESYNCS

    stopped = sync_incoming(org.store, box, mailbox_id, options)
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
        assert cursor.uidvalidity == folder.uidvalidity - 1


def test_after_the_reset_re_maps_are_allowed_again(
    org: Org, box: SecretBox, folder: RenumberingFolder
) -> None:
    mailbox_id = _mailbox(org, box)
    for _ in range(MAX_UIDVALIDITY_RESYNCS + 2):
        sync_incoming(org.store, box, mailbox_id, IncomingOptions())
    assert _changes(org, mailbox_id) == MAX_UIDVALIDITY_RESYNCS
    with org.store.transaction() as session:  # what a passing Test & Enable does
        reset_uidvalidity_resyncs(session, mailbox_id)
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        mailbox.channel(Channel.INCOMING).enabled = True
    report = sync_incoming(org.store, box, mailbox_id, IncomingOptions())
    assert report.error is None, report.error
    assert _changes(org, mailbox_id) == 1
