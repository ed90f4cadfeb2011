"""The alert wall and the triage queue, as an administrator uses them (and nobody else)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import AlertCause, AlertSeverity, AlertState, Channel, ItemResolution
from crmsync.crm.alerts import raise_alert
from crmsync.crm.auth import hash_password
from crmsync.crm.db import utcnow
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Alert, Contact, Email, ItemFailure, Mailbox, Organisation, User
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.records import create_record
from crmsync.crm.settings import TrackingPreferences
from crmsync.crm.store import Store
from crmsync.sync.incoming.ingest import store_batch
from crmsync.sync.incoming.parser_pool import Fetched, discard_leftovers, prepare_fetched
from crmsync.sync.triage import engine_context
from crmsync.tracking.parse import ParseLimits
from tests.conftest import Org
from tests.unit.web.conftest import log_in

pytestmark = pytest.mark.usefixtures("web_org")


def message(sender: str, to: str, subject: str, body: str, number: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <triage-{number}-{uuid.uuid4().hex}@example.test>\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


@dataclass(frozen=True)
class Untracked:
    mailbox_id: uuid.UUID
    carol_id: uuid.UUID  # the contact the failed message is from
    failure_id: uuid.UUID  # Carol's message: failed under a 1 KB limit since raised
    unknown_id: uuid.UUID  # Dave's message: seen, not tracked, he is no CRM record


def seed_untracked(store: Store, org: Org, username: str = "sam") -> Untracked:
    """A mailbox that tracks only email from CRM records, after one incoming pass through
    the engine's storing step: a message from a contact that failed to parse (it was over
    the organisation's size limit of the day, 1 KB, since raised), and one from an
    unknown sender, seen and not tracked."""
    with store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        organisation.settings = {**organisation.settings, "max_message_bytes": 1024}
        address = f"{username}@acme.test"
        sam = session.get(User, org.add_user(session, username, addresses=(address,)))
        assert sam is not None
        sam.settings = TrackingPreferences(track_scope="from_crm_records").model_dump(mode="json")
        mailbox = create_mailbox_for(session, user=sam)
        mailbox.email_address = address
        admin = org.principal(session, org.admin_id)
        carol = create_record(
            session,
            admin,
            Contact,
            {"first_name": "Carol", "last_name": "Customer", "email1": "carol@customer.test"},
        )
        session.flush()
        mailbox_id, carol_id = mailbox.id, carol.id
    long_order = "Please send 40 more units of the blue widget. " * 60
    raws = [
        message("Carol Customer <carol@customer.test>", address, "Quarterly order", long_order, 1),
        message("Dave Newman <dave@newcorp.test>", address, "Interested in a demo", "Call me?", 2),
    ]
    items = [Fetched("INBOX", 7, uid, None, raw, len(raw)) for uid, raw in enumerate(raws, 1)]
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        ctx = engine_context(session, mailbox)
        outcomes = prepare_fetched(
            items, ParseLimits(max_bytes=ctx.settings.max_message_bytes), store.blobs.root
        ).outcomes()
        try:
            store_batch(session, store, ctx, items, outcomes)
        finally:
            discard_leftovers(store.blobs.root, outcomes)
    with store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        raised = {**organisation.settings}
        raised.pop("max_message_bytes")
        organisation.settings = raised
        failure = session.scalars(
            select(ItemFailure).where(ItemFailure.mailbox_id == mailbox_id)
        ).one()
        unknown = session.scalars(
            select(MailboxMessage).where(
                MailboxMessage.mailbox_id == mailbox_id,
                MailboxMessage.uid == 2,
                MailboxMessage.tracked.is_(False),
            )
        ).one()
        return Untracked(mailbox_id, carol_id, failure.id, unknown.id)


def seed_alerts(store: Store, org: Org, mailbox_id: uuid.UUID) -> dict[str, uuid.UUID]:
    now = utcnow()
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        made = {}
        for code, severity, minutes in (
            ("QUOTA", AlertSeverity.WARNING, 1),
            ("AUTH_FAILED", AlertSeverity.ERROR, 5),
            ("UIDVALIDITY_CHANGED", AlertSeverity.INFORMATION, 0),
        ):
            alert = raise_alert(
                session,
                organisation_id=org.organisation_id,
                severity=severity,
                code=code,
                title=f"Incoming: {code.replace('_', ' ').lower()}",
                detail=f"detail of {code}",
                remediation=f"Fix {code}.",
                mailbox=mailbox,
                channel=Channel.INCOMING,
                cause=AlertCause.CHANNEL_FAILING,
                now=now - timedelta(minutes=minutes),
            )
            made[code] = alert.id
        return made


@pytest.fixture
def untracked(web_store: Store, web_org: Org) -> Untracked:
    return seed_untracked(web_store, web_org)


@pytest.fixture
def alert_ids(web_store: Store, web_org: Org, untracked: Untracked) -> dict[str, uuid.UUID]:
    return seed_alerts(web_store, web_org, untracked.mailbox_id)


def _alert(store: Store, alert_id: uuid.UUID) -> Alert:
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        session.expunge(alert)
        return alert


def test_the_wall_lists_open_alerts_worst_first_with_their_mailbox(
    browser: TestClient, alert_ids: dict[str, uuid.UUID], untracked: Untracked
) -> None:
    log_in(browser)
    page = browser.get("/admin/alerts")
    assert page.status_code == 200
    text = page.text
    order = [text.index(f"alert-{alert_ids[code]}") for code in ("AUTH_FAILED", "QUOTA")]
    assert order == sorted(order)  # the error before the warning
    assert text.index(f"alert-{alert_ids['QUOTA']}") < text.index(
        f"alert-{alert_ids['UIDVALIDITY_CHANGED']}"
    )
    assert f'href="/admin/mailboxes/{untracked.mailbox_id}"' in text
    assert "Fix AUTH_FAILED." in text
    assert "detail of AUTH_FAILED" in text


def test_acknowledging_with_htmx_answers_the_card_and_records_who(
    browser: TestClient, web_store: Store, web_org: Org, alert_ids: dict[str, uuid.UUID]
) -> None:
    token = log_in(browser)
    alert_id = alert_ids["AUTH_FAILED"]
    answer = browser.post(
        f"/admin/alerts/{alert_id}/acknowledge",
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert answer.status_code == 200
    assert "Alert acknowledged" in answer.text
    assert "Acknowledged" in answer.text
    assert "/acknowledge" not in answer.text  # nothing left to acknowledge
    alert = _alert(web_store, alert_id)
    assert alert.state is AlertState.ACKNOWLEDGED
    assert alert.acknowledged_by_id == web_org.admin_id


def test_a_dismissed_alert_leaves_the_wall_for_the_history(
    browser: TestClient, web_store: Store, alert_ids: dict[str, uuid.UUID]
) -> None:
    token = log_in(browser)
    alert_id = alert_ids["QUOTA"]
    answer = browser.post(f"/admin/alerts/{alert_id}/dismiss", data={"csrf_token": token})
    assert answer.status_code == 303
    assert _alert(web_store, alert_id).state is AlertState.DISMISSED
    assert f"alert-{alert_id}" not in browser.get("/admin/alerts").text
    history = browser.get("/admin/alerts?show=history").text
    assert f"alert-{alert_id}" in history
    assert "Dismissed" in history


def test_an_unsafe_request_without_the_csrf_token_changes_nothing(
    browser: TestClient, web_store: Store, alert_ids: dict[str, uuid.UUID], untracked: Untracked
) -> None:
    log_in(browser)
    alert_id = alert_ids["AUTH_FAILED"]
    for path in (
        f"/admin/alerts/{alert_id}/acknowledge",
        f"/admin/alerts/{alert_id}/dismiss",
        f"/admin/triage/failure/{untracked.failure_id}/retry",
        f"/admin/triage/unknown-sender/{untracked.unknown_id}/ignore",
    ):
        assert browser.post(path, data={"csrf_token": "forged"}).status_code == 403, path
    assert _alert(web_store, alert_id).state is AlertState.OPEN
    with web_store.transaction() as session:
        assert session.scalars(select(Email)).first() is None
        assert session.scalars(select(ItemFailure.resolved_at)).one() is None


def test_a_salesperson_gets_the_404_page_everywhere(
    browser: TestClient,
    web_store: Store,
    web_org: Org,
    alert_ids: dict[str, uuid.UUID],
    untracked: Untracked,
) -> None:
    with web_store.transaction() as session:
        user = session.scalars(select(User).where(User.username == "sam")).one()
        user.password_hash = hash_password("sam-password")
    token = log_in(browser, "sam", "sam-password")
    alert_id = alert_ids["AUTH_FAILED"]
    failure = f"/admin/triage/failure/{untracked.failure_id}"
    unknown = f"/admin/triage/unknown-sender/{untracked.unknown_id}"
    for path in (
        "/admin/alerts",
        "/admin/alerts?show=history",
        "/admin/triage",
        "/admin/triage?show=resolved",
        f"{unknown}/regarding/options?find=carol",
    ):
        assert browser.get(path).status_code == 404, path
    for path in (
        f"/admin/alerts/{alert_id}/acknowledge",
        f"/admin/alerts/{alert_id}/dismiss",
        f"{failure}/retry",
        f"{failure}/contact",
        f"{failure}/regarding",
        f"{failure}/ignore",
        f"{unknown}/contact",
        f"{unknown}/ignore",
    ):
        answer = browser.post(path, data={"csrf_token": token, "record": "x"})
        assert answer.status_code == 404, path
    # Sam's alert is addressed to him, but these pages are not his to use.
    assert _alert(web_store, alert_id).state is AlertState.OPEN


def test_the_queue_shows_failures_and_unknown_senders_with_their_subjects(
    browser: TestClient, untracked: Untracked
) -> None:
    log_in(browser)
    text = browser.get("/admin/triage").text
    assert "Quarterly order" in text
    assert "MALFORMED_MESSAGE" in text
    assert "Interested in a demo" in text
    assert "Not tracked: unknown sender" in text
    assert "dave@newcorp.test" in text
    assert f"/admin/triage/failure/{untracked.failure_id}/retry" in text
    assert f"/admin/triage/unknown-sender/{untracked.unknown_id}/contact" in text
    # Carol is a contact already: making her one again is not offered.
    assert f"/admin/triage/failure/{untracked.failure_id}/contact" not in text


def test_retry_tracks_the_failed_message_and_resolves_it(
    browser: TestClient, web_store: Store, web_org: Org, untracked: Untracked
) -> None:
    token = log_in(browser)
    answer = browser.post(
        f"/admin/triage/failure/{untracked.failure_id}/retry", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/emails/")
    email_id = uuid.UUID(answer.headers["location"].removeprefix("/emails/"))
    with web_store.transaction() as session:
        email = session.get(Email, email_id)
        assert email is not None
        assert email.subject == "Quarterly order"
        failure = session.get(ItemFailure, untracked.failure_id)
        assert failure is not None
        assert failure.resolution is ItemResolution.TRACKED
        assert failure.email_id == email_id
        assert failure.resolved_by_id == web_org.admin_id
    assert "Quarterly order" not in browser.get("/admin/triage").text
    assert f'href="/emails/{email_id}"' in browser.get("/admin/triage?show=resolved").text


def test_creating_the_missing_contact_tracks_the_message_against_them(
    browser: TestClient, web_store: Store, untracked: Untracked
) -> None:
    token = log_in(browser)
    answer = browser.post(
        f"/admin/triage/unknown-sender/{untracked.unknown_id}/contact", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    email_id = uuid.UUID(answer.headers["location"].removeprefix("/emails/"))
    with web_store.transaction() as session:
        dave = session.scalars(select(Contact).where(Contact.email1 == "dave@newcorp.test")).one()
        assert (dave.first_name, dave.last_name) == ("Dave", "Newman")
        email = session.get(Email, email_id)
        assert email is not None
        assert email.subject == "Interested in a demo"
        sender = next(p for p in email.parties if p.participation.value == "from")
        assert sender.party_id == dave.id
    assert "Interested in a demo" not in browser.get("/admin/triage").text


def test_setting_regarding_by_hand_tracks_it_regarding_the_chosen_record(
    browser: TestClient, web_store: Store, untracked: Untracked
) -> None:
    token = log_in(browser)
    base = f"/admin/triage/unknown-sender/{untracked.unknown_id}/regarding"
    options = browser.get(f"{base}/options?find=carol", headers={"HX-Request": "true"})
    assert options.status_code == 200
    assert f'value="contact:{untracked.carol_id}"' in options.text
    answer = browser.post(
        base, data={"csrf_token": token, "record": f"contact:{untracked.carol_id}"}
    )
    assert answer.status_code == 303
    email_id = uuid.UUID(answer.headers["location"].removeprefix("/emails/"))
    with web_store.transaction() as session:
        email = session.get(Email, email_id)
        assert email is not None
        assert email.regarding_id == untracked.carol_id


def test_ignoring_an_item_says_who_decided(
    browser: TestClient, web_store: Store, web_org: Org, untracked: Untracked
) -> None:
    token = log_in(browser)
    for path in (
        f"/admin/triage/failure/{untracked.failure_id}/ignore",
        f"/admin/triage/unknown-sender/{untracked.unknown_id}/ignore",
    ):
        assert browser.post(path, data={"csrf_token": token}).status_code == 303
    queue = browser.get("/admin/triage").text
    assert "Quarterly order" not in queue
    assert "Interested in a demo" not in queue
    resolved = browser.get("/admin/triage?show=resolved").text
    assert "Quarterly order" in resolved
    assert "Interested in a demo" in resolved
    with web_store.transaction() as session:
        ignored = session.scalars(select(ItemFailure)).all()
        assert {failure.resolution for failure in ignored} == {ItemResolution.IGNORED}
        assert {failure.resolved_by_id for failure in ignored} == {web_org.admin_id}
        assert session.scalars(select(Email)).first() is None
