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
from typing import Any

import pytest
from sqlalchemy import select

from crmsync.core.types import Channel, EmailStatus, Participation, ServerType
from crmsync.crm import profiles
from crmsync.crm.activities import PartySpec
from crmsync.crm.errors import RuleViolation
from crmsync.crm.models import FolderCursor, Mailbox, MailboxTest
from crmsync.crm.settings import TrackingPreferences
from crmsync.sync.check_enable import check_and_enable
from crmsync.sync.incoming.imap import MAX_UIDVALIDITY_RESYNCS
from tests.integration.conftest import Connected, message
from tests.integration.test_outgoing import Outbox, make_outbox
from tests.servers import DovecotServer, SmtpServer
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


# -- an SMTP relay that trusts its clients' addresses -------------------------------------
@pytest.fixture(scope="module")
def trusted_relay(dovecot: DovecotServer) -> Iterator[SmtpServer]:
    """The relay of tests/servers, offering no AUTH and relaying for every client."""
    with SmtpServer.in_front_of(dovecot, trusted_relay=True) as server:
        yield server


@pytest.fixture
def outbox(connected: Connected) -> Outbox:
    return make_outbox(connected)


def _move_to_relay(outbox: Outbox, relay: SmtpServer, values: dict[str, Any] | None = None) -> None:
    """Put ann's mailbox on a profile whose outgoing side is ``relay`` (IMAP unchanged)."""
    connected = outbox.connected
    with connected.store.transaction() as session:
        profile = profiles.create_profile(
            session,
            connected.admin(),
            {
                "name": f"relay-{uuid.uuid4().hex[:6]}",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": connected.dovecot.imap_port,
                "incoming_security": "starttls",
                "outgoing_host": "127.0.0.1",
                "outgoing_port": relay.port,
                "outgoing_security": "starttls",
                "ca_pem": connected.dovecot.ca_cert.read_text()
                if connected.dovecot.ca_cert
                else None,
                **(values or {}),
            },
            connected.box,
        )
        mailbox = session.get(Mailbox, outbox.mailbox_id)
        assert mailbox is not None
        mailbox.profile_id = profile.id


def _outgoing_step(connected: Connected, run_id: uuid.UUID, name: str) -> dict[str, Any]:
    with connected.store.transaction() as session:
        run = session.get(MailboxTest, run_id)
        assert run is not None
        return next(s for s in run.steps if s["channel"] == "outgoing" and s["name"] == name)


def test_a_relay_without_auth_sends_when_the_profile_says_no_authentication(
    outbox: Outbox, trusted_relay: SmtpServer
) -> None:
    _move_to_relay(outbox, trusted_relay, {"outgoing_auth": "none"})
    connected = outbox.connected
    run = check_and_enable(connected.store, connected.box, outbox.mailbox_id)
    assert run.ok, run.steps
    auth = _outgoing_step(connected, run.id, "auth")
    assert auth["detail"] == "skipped: no authentication, as configured for this profile"

    carol = f"carol-{uuid.uuid4().hex[:6]}@partner.test"
    email_id = outbox.email(parties=[PartySpec(Participation.TO, address=carol)])
    outbox.queue(email_id)
    report = outbox.send()
    assert report.error is None, report.error
    assert report.sent == 1
    assert outbox.get(email_id).status is EmailStatus.SENT
    (spooled,) = [m for m in trusted_relay.external_messages() if carol in m.rcpt_tos]
    assert spooled.authenticated_as is None  # sent without AUTH, relayed as trusted


def test_a_relay_without_auth_fails_clearly_unless_the_profile_chose_it(
    outbox: Outbox, trusted_relay: SmtpServer
) -> None:
    _move_to_relay(outbox, trusted_relay)  # outgoing_auth left as it comes: AUTH
    connected = outbox.connected
    run = check_and_enable(connected.store, connected.box, outbox.mailbox_id)
    assert not run.ok
    auth = _outgoing_step(connected, run.id, "auth")
    assert auth["code"] == "AUTH_MECHANISM_UNSUPPORTED"
    assert "it offers no AUTH" in auth["detail"]
    assert 'choose "no authentication" for the outgoing side' in auth["detail"]
    with connected.store.transaction() as session:
        mailbox = session.get(Mailbox, outbox.mailbox_id)
        assert mailbox is not None
        assert mailbox.channel(Channel.OUTGOING).enabled is False


def test_no_authentication_is_refused_where_there_is_no_smtp_server(
    connected: Connected,
) -> None:
    with connected.store.transaction() as session, pytest.raises(RuleViolation) as caught:
        profiles.create_profile(
            session,
            connected.admin(),
            {
                "name": "Exchange",
                "server_type": ServerType.EXCHANGE_SERVER,
                "exchange_url": "https://mail.example.test/EWS/Exchange.asmx",
                "outgoing_auth": "none",
            },
            connected.box,
        )
    assert caught.value.fields["field"] == "outgoing_auth"
