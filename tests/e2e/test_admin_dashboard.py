"""The performance dashboard in Chromium, drawn from passes the real engine ran against
Dovecot in the live server's store: an incoming pass, a second one an IMAP IDLE notice
triggered (so it has a lag and a push latency), and an outgoing pass that sent an email
through the SMTP relay. A salesperson gets the 404 page."""

from __future__ import annotations

import queue
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from crmsync.core.types import Approval, Channel, Participation, RecordType, ServerType
from crmsync.crm import activities, directory, mailboxes, outbound, profiles, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Contact, Email, Mailbox, SyncPass
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import TrackingPreferences
from crmsync.runtime.push import IdleWatcher
from crmsync.sync.check_enable import check_and_enable
from crmsync.sync.context import Runnable, load_context
from crmsync.sync.incoming import IncomingOptions, sync_incoming
from crmsync.sync.outgoing import sync_outgoing
from tests.e2e.conftest import LiveServer, log_in
from tests.integration.conftest import Connected, _ca, message
from tests.servers import DovecotServer, SmtpServer

SHOTS = Path("/tmp/shots")
PROFILE = "Dovecot (dashboard)"


def _connect(live_server: LiveServer, dovecot: DovecotServer, smtp: SmtpServer) -> Connected:
    """The live server's organisation wired to the test Dovecot and relay. The engine
    runs here, in the test, with a key of its own for the credentials it stores."""
    key = SecretBox.generate_key()
    box = SecretBox([key])
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        profile = profiles.create_profile(
            session,
            admin,
            {
                "name": PROFILE,
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": dovecot.imap_port,
                "incoming_security": "starttls",
                "outgoing_host": "127.0.0.1",
                "outgoing_port": smtp.port,
                "outgoing_security": "starttls",
                "ca_pem": _ca(dovecot),
            },
            box,
        )
        profile_id = profile.id
    return Connected(org, org.store, box, dovecot, smtp, profile_id, secret_key=key)


def _add_mailbox(connected: Connected, name: str) -> uuid.UUID:
    """A user with a Dovecot account and an approved, tested mailbox on our profile
    (Connected.add_mailbox takes the organisation's default profile, which is not ours)."""
    mail_user = connected.dovecot.add_user(f"{name}-{uuid.uuid4().hex[:6]}", "pw-" + name * 2)
    admin = connected.admin()
    with connected.store.transaction() as session:
        user = directory.create_user(
            session,
            admin,
            username=mail_user.name,
            full_name=name.title(),
            business_unit_id=connected.org.root_unit_id,
            email_addresses=[mail_user.address],
        )
        user.settings = TrackingPreferences(track_scope="all").model_dump(mode="json")
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == user.id)).one()
        values = {"password": mail_user.password, "profile_id": connected.profile_id}
        mailboxes.update_mailbox(session, admin, mailbox, values, connected.box)
        mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
        mailbox_id = mailbox.id
    run = check_and_enable(connected.store, connected.box, mailbox_id)
    assert run.ok, run.steps
    connected.mailboxes[name] = mailbox_id
    connected.users[name] = mail_user
    return mailbox_id


def _pushed_pass(connected: Connected, mailbox_id: uuid.UUID) -> None:
    """Wait for Dovecot's IDLE notice of a new message, then run the pass it triggers."""
    with connected.store.transaction() as session:
        ready = load_context(session, connected.box, mailbox_id, Channel.INCOMING)
        assert isinstance(ready, Runnable)
        plan = ready.plan
    assert plan is not None
    assert plan.incoming is not None
    notices: queue.Queue[datetime] = queue.Queue()

    def wake(_mailbox: uuid.UUID, noticed_at: datetime | None) -> None:
        if noticed_at is not None:
            notices.put(noticed_at)

    watcher = IdleWatcher(mailbox_id, plan.incoming, plan.credentials, wake, idle_seconds=5)
    watcher.start()
    try:
        time.sleep(1.0)  # let it enter IDLE
        connected.deliver(["dana"], message(subject="Pushed order"))
        noticed = notices.get(timeout=15)
    finally:
        watcher.stop()
    report = sync_incoming(
        connected.store, connected.box, mailbox_id, IncomingOptions(pushed_at=noticed)
    )
    assert (report.error, report.tracked) == (None, 1)


def _send_one(connected: Connected, mailbox_id: uuid.UUID) -> None:
    """A CRM email from dana's mailbox to a contact, queued and sent by the engine."""
    bob = connected.dovecot.add_user(f"bob-{uuid.uuid4().hex[:6]}", "pw-bob-bob")
    with connected.store.transaction() as session:
        admin = connected.admin()
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        assert mailbox.user_id is not None
        contact = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Bob", "last_name": "Dash", "email1": bob.address},
        )
        email = activities.create_activity(
            session,
            admin,
            Email,
            {"subject": "Your quote", "body_text": "Hello Bob", "description": "<p>Hello Bob</p>"},
            [PartySpec(Participation.TO, RecordType.CONTACT, contact.id)],
            owner_id=mailbox.user_id,
        )
        outbound.request_send(session, admin, email)
    report = sync_outgoing(connected.store, connected.box, mailbox_id)
    assert (report.error, report.sent) == (None, 1), report


@pytest.fixture
def synced(live_server: LiveServer, dovecot: DovecotServer, smtp_server: SmtpServer) -> uuid.UUID:
    """dana's mailbox after three real passes; returns its id."""
    connected = _connect(live_server, dovecot, smtp_server)
    mailbox_id = _add_mailbox(connected, "dana")
    for subject in ("Order 1", "Order 2", "Question"):
        connected.deliver(["dana"], message(subject=subject))
    first = sync_incoming(connected.store, connected.box, mailbox_id)
    assert (first.error, first.tracked) == (None, 3)
    _pushed_pass(connected, mailbox_id)
    _send_one(connected, mailbox_id)
    return mailbox_id


def test_the_dashboard_draws_the_real_passes(
    live_server: LiveServer, page: Page, synced: uuid.UUID
) -> None:
    with live_server.store.transaction() as session:
        passes = session.scalars(select(SyncPass).where(SyncPass.mailbox_id == synced)).all()
        name = session.scalars(select(Mailbox.name).where(Mailbox.id == synced)).one()
    assert sorted(row.channel.value for row in passes) == ["incoming", "incoming", "outgoing"]
    assert any(row.push_latency_seconds is not None for row in passes)

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.admin, "/admin/dashboard")
    expect(page.get_by_role("heading", name="Performance")).to_be_visible()
    charts = page.locator("#dash-charts")
    expect(charts).to_have_attribute("data-drawn", "true")

    canvases = page.locator(".dash-chart canvas")
    expect(canvases).to_have_count(4)
    for index in range(4):
        box = canvases.nth(index).bounding_box()
        assert box is not None
        assert box["width"] > 200
        assert box["height"] > 100
    legends = page.locator(".dash-chart .u-legend")
    expect(legends.nth(0)).to_contain_text("Tracked")
    expect(legends.nth(0)).to_contain_text("Failed")
    expect(legends.nth(1)).to_contain_text("Sent")
    expect(legends.nth(2)).to_contain_text(name)
    expect(legends.nth(3)).to_contain_text("Median")
    expect(legends.nth(3)).to_contain_text("95th percentile")
    expect(page.locator(".dash-table")).to_contain_text(PROFILE)

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True, caret="initial")

    # The profile filter narrows to one profile; the window selector keeps it.
    page.get_by_label("Email server profile").select_option(label=PROFILE)
    page.wait_for_url("**/admin/dashboard?*profile=*")
    expect(page.locator("#dash-charts")).to_have_attribute("data-drawn", "true")
    page.get_by_role("link", name="7 days").click()
    page.wait_for_url("**/admin/dashboard?window=7d&profile=*")
    expect(page.locator("#dash-charts")).to_have_attribute("data-drawn", "true")
    expect(page.locator(".dash-chart canvas")).to_have_count(4)
    page.screenshot(path=str(SHOTS / "dashboard-7d.png"), full_page=True, caret="initial")


def test_a_salesperson_gets_404_on_the_dashboard(live_server: LiveServer, page: Page) -> None:
    log_in(page, live_server.salesperson)
    for path in ("/admin/dashboard", "/admin/dashboard/data"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 404, path
    expect(page.get_by_role("heading", name="Performance")).to_have_count(0)
