"""Servers that use what the RFCs leave optional, against the real Dovecot and SMTP relay.

- An IMAP server whose SELECT never says ``[UIDNEXT n]`` (RFC 3501 allows it): the real
  Dovecot behind ``ImapFilterProxy``, which removes those lines (and, in the harder case,
  UIDNEXT from STATUS answers too). Test & Enable passes and every message is tracked.
- A passing Test & Enable allows a folder's UIDVALIDITY re-maps again (the cap of
  sync/incoming_imap.py).
- An SMTP relay that accepts mail from trusted clients without AUTH: usable when, and only
  when, the administrator chose "no authentication" for the profile's outgoing side.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crmsync.crm import profiles
from crmsync.crm.models import FolderCursor, MailboxTest
from crmsync.crm.settings import TrackingPreferences
from crmsync.crm.types import ServerType
from crmsync.sync.check_enable import check_and_enable
from crmsync.sync.incoming_imap import MAX_UIDVALIDITY_RESYNCS
from tests.integration.conftest import Connected, message
from tests.servers.imap_filter_proxy import ImapFilterProxy

pytestmark = pytest.mark.integration

ALL = TrackingPreferences(track_scope="all")


@pytest.fixture(params=[False, True], ids=["status-has-uidnext", "status-without-uidnext"])
def proxy(request: pytest.FixtureRequest, connected: Connected) -> Iterator[ImapFilterProxy]:
    """Dovecot's plain IMAP port, with SELECT's UIDNEXT (and maybe STATUS's) removed."""
    with ImapFilterProxy(connected.dovecot.imap_port, hide_status_uidnext=request.param) as running:
        yield running


def _use_proxy(connected: Connected, proxy: ImapFilterProxy) -> uuid.UUID:
    """A default profile whose IMAP side is the proxy (plain, on loopback)."""
    with connected.store.transaction() as session:
        profile = profiles.create_profile(
            session,
            connected.admin(),
            {
                "name": f"no-uidnext-{uuid.uuid4().hex[:6]}",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": proxy.port,
                "incoming_security": "plain",
                "allow_plaintext": True,
                "outgoing_host": "127.0.0.1",
                "outgoing_port": connected.smtp.port,
                "outgoing_security": "starttls",
                "ca_pem": connected.dovecot.ca_cert.read_text()
                if connected.dovecot.ca_cert
                else None,
                "is_default": True,
            },
            connected.box,
        )
        return profile.id


def test_select_without_uidnext_passes_test_and_enable_and_tracks_every_message(
    connected: Connected, proxy: ImapFilterProxy
) -> None:
    _use_proxy(connected, proxy)
    mailbox_id = connected.add_mailbox("ann", preferences=ALL)  # asserts Test & Enable ok
    address = connected.users["ann"].address
    for n in range(3):
        connected.deliver(["ann"], message(to=address, subject=f"first {n}"))
    assert connected.sync("ann").tracked == 3
    for n in range(2):
        connected.deliver(["ann"], message(to=address, subject=f"second {n}"))
    assert connected.sync("ann").tracked == 2
    assert connected.sync("ann").tracked == 0  # nothing new: nothing twice
    assert proxy.hidden > 0  # the proxy really hid UIDNEXT from every SELECT

    run = check_and_enable(connected.store, connected.box, mailbox_id)
    assert run.ok, run.steps
    with connected.store.transaction() as session:
        steps = session.scalars(select(MailboxTest).where(MailboxTest.id == run.id)).one().steps
    inbox = next(s for s in steps if s["channel"] == "incoming" and s["name"] == "inbox")
    source = "UID FETCH *" if proxy.hide_status_uidnext else "STATUS"
    assert f"no UIDNEXT in the SELECT answer, so it was asked by {source}" in inbox["detail"]
    assert "INBOX holds 5 messages" in inbox["detail"]


def test_test_and_enable_allows_uidvalidity_re_maps_again(connected: Connected) -> None:
    mailbox_id = connected.add_mailbox("bob", preferences=ALL)
    connected.sync("bob")  # the INBOX cursor is born
    with connected.store.transaction() as session:
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == mailbox_id)
        ).one()
        cursor.uidvalidity_changes = MAX_UIDVALIDITY_RESYNCS
    run = check_and_enable(connected.store, connected.box, mailbox_id)
    assert run.ok, run.steps
    with connected.store.transaction() as session:
        cursor = session.scalars(
            select(FolderCursor).where(FolderCursor.mailbox_id == mailbox_id)
        ).one()
        assert cursor.uidvalidity_changes == 0
