"""The mailbox health table, approval, Test & Enable from the page, and the profile and
mailbox forms, as an administrator (and a salesperson, who finds none of it)."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.errors import CATALOGUE, ErrorCode
from crmsync.core.types import Approval, Channel, ChannelStatus, ServerType
from crmsync.crm import directory, mailboxes, profiles
from crmsync.crm.auth import hash_password
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import EmailServerProfile, ItemFailure, Mailbox
from crmsync.crm.models.org import User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.web.conftest import csrf_token, log_in

STORED_PASSWORD = "s3cret-Stored-Pw-7731"
AUTH_REMEDIATION = CATALOGUE[ErrorCode.AUTH_FAILED].remediation


@dataclass
class Setup:
    profile_id: uuid.UUID
    failing: uuid.UUID  # Alice: approved, incoming failing with AUTH_FAILED, 2 failed items
    pending: uuid.UUID  # Bob: pending approval, never run
    healthy: uuid.UUID  # Carol: approved, both channels OK


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def setup(web_store: Store, web_org: Org, web_app: object) -> Setup:
    box: SecretBox = web_app.state.secret_box  # type: ignore[attr-defined]
    port = _closed_port()  # nothing listens: a Test & Enable fails at "tcp"
    with web_store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        profile = profiles.create_profile(
            session,
            admin,
            {
                "name": "Office IMAP",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": port,
                "outgoing_host": "127.0.0.1",
                "outgoing_port": port,
                "is_default": True,
            },
            box,
        )
        ids = {}
        for name in ("alice", "bob", "carol"):
            user = directory.create_user(
                session,
                admin,
                username=name,
                full_name=name.title(),
                business_unit_id=web_org.root_unit_id,
                email_addresses=[f"{name}@acme.test"],
            )
            mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == user.id)).one()
            mailboxes.update_mailbox(session, admin, mailbox, {"password": STORED_PASSWORD}, box)
            ids[name] = mailbox
        # The administrator's own mailbox, approved and never run, is in the table too.
        own = session.scalars(select(Mailbox).where(Mailbox.user_id == web_org.admin_id)).one()
        mailboxes.set_approval(session, admin, own, Approval.APPROVED)
        now = utcnow()
        for name in ("alice", "carol"):
            mailboxes.set_approval(session, admin, ids[name], Approval.APPROVED)
            for channel in ids[name].channels:
                if channel.channel is not Channel.ACT:
                    channel.enabled, channel.status = True, ChannelStatus.SUCCESS
                    channel.last_success_at = channel.last_attempt_at = now
                    channel.items_processed = 17
        incoming = ids["alice"].channel(Channel.INCOMING)
        incoming.status, incoming.enabled = ChannelStatus.FAILURE, False
        incoming.last_error_code = ErrorCode.AUTH_FAILED.value
        incoming.last_error_detail = "LOGIN refused: [AUTHENTICATIONFAILED]"
        for ref in ("uid:1", "uid:2", "uid:3"):
            session.add(
                ItemFailure(
                    organisation_id=web_org.organisation_id,
                    mailbox_id=ids["alice"].id,
                    channel=Channel.INCOMING,
                    item_ref=ref,
                    code="MALFORMED_MESSAGE",
                    resolved_at=now if ref == "uid:3" else None,  # resolved: not counted
                )
            )
        return Setup(profile.id, ids["alice"].id, ids["bob"].id, ids["carol"].id)


def _rows(page: str) -> dict[str, lxml.html.HtmlElement]:
    tree = lxml.html.fromstring(page)
    return {
        row.xpath(".//a[@class='mailbox-name']")[0].text_content(): row
        for row in tree.xpath("//tr[contains(@class, 'mailbox-row')]")
    }


def _cell(row: lxml.html.HtmlElement, channel: str) -> str:
    return " ".join(row.xpath(f".//td[@data-channel='{channel}']")[0].text_content().split())


def test_the_table_shows_each_channel_with_its_error_and_remediation(
    browser: TestClient, setup: Setup
) -> None:
    log_in(browser)
    page = browser.get("/admin/mailboxes")
    assert page.status_code == 200
    rows = _rows(page.text)
    assert set(rows) == {"Administrator", "Alice", "Bob", "Carol"}
    alice = rows["Alice"]
    assert "row-failing" in alice.get("class")
    assert "alice@acme.test" in alice.text_content()
    assert "Office IMAP" in alice.text_content()
    incoming = _cell(alice, "incoming")
    assert incoming.startswith("Failing AUTH_FAILED")
    assert AUTH_REMEDIATION in incoming
    assert "2 failed" in incoming  # the resolved one is not counted
    assert "17 processed" in incoming
    outgoing = _cell(alice, "outgoing")
    assert outgoing.startswith("OK")
    assert "ago" in outgoing
    assert "Next" in outgoing
    assert "Not used" in _cell(alice, "act")
    assert _cell(rows["Bob"], "incoming").startswith("Not run")
    assert "Last OK never" in _cell(rows["Bob"], "incoming")
    assert STORED_PASSWORD not in page.text


def test_the_filters_show_the_failing_and_the_pending(browser: TestClient, setup: Setup) -> None:
    log_in(browser)
    assert set(_rows(browser.get("/admin/mailboxes?show=failing").text)) == {"Alice"}
    pending = browser.get("/admin/mailboxes?show=pending").text
    assert set(_rows(pending)) == {"Bob"}
    tree = lxml.html.fromstring(pending)
    assert tree.xpath("//a[@aria-current='page']")[-1].text_content() == "Pending approval"
    assert browser.get("/admin/mailboxes?show=nonsense").status_code == 400


def test_approve_and_reject_from_the_table(
    browser: TestClient, setup: Setup, web_store: Store
) -> None:
    token = log_in(browser)
    page = browser.get("/admin/mailboxes?show=pending").text
    assert len(lxml.html.fromstring(page).xpath("//button[text()='Approve']")) == 1
    approved = browser.post(
        f"/admin/mailboxes/{setup.pending}/approve",
        data={"csrf_token": token, "back": "pending"},
    )
    assert approved.status_code == 303
    assert approved.headers["location"] == "/admin/mailboxes?show=pending"
    after = browser.get("/admin/mailboxes?show=pending").text
    assert _rows(after) == {}
    assert "Bob&#39;s mailbox approved." in after
    rejected = browser.post(f"/admin/mailboxes/{setup.failing}/reject", data={"csrf_token": token})
    assert rejected.headers["location"] == "/admin/mailboxes"
    with web_store.transaction() as session:
        assert session.get(Mailbox, setup.pending).approval is Approval.APPROVED  # type: ignore[union-attr]
        assert session.get(Mailbox, setup.failing).approval is Approval.REJECTED  # type: ignore[union-attr]


def _log_in_salesperson(browser: TestClient, web_store: Store, web_org: Org) -> str:
    with web_store.transaction() as session:
        user = session.get(User, web_org.add_user(session, "sally"))
        assert user is not None
        user.password_hash = hash_password("sally-password")
    return log_in(browser, "sally", "sally-password")


def test_a_salesperson_finds_none_of_these_pages(
    browser: TestClient, setup: Setup, web_store: Store, web_org: Org
) -> None:
    token = _log_in_salesperson(browser, web_store, web_org)
    run = uuid.uuid4()
    gets = [
        "/admin/mailboxes",
        "/admin/mailboxes?show=failing",
        f"/admin/mailboxes/{setup.failing}",
        f"/admin/mailboxes/{setup.failing}/tests/{run}",
        "/admin/profiles",
        "/admin/profiles/new",
        f"/admin/profiles/{setup.profile_id}",
    ]
    posts = [
        f"/admin/mailboxes/{setup.pending}/approve",
        f"/admin/mailboxes/{setup.pending}/reject",
        f"/admin/mailboxes/{setup.failing}",
        f"/admin/mailboxes/{setup.failing}/test",
        "/admin/profiles",
        f"/admin/profiles/{setup.profile_id}",
    ]
    for path in gets:
        page = browser.get(path)
        assert page.status_code == 404, path
        assert "There is no such page" in page.text
    for path in posts:
        answer = browser.post(path, data={"csrf_token": token, "name": "Taken over"})
        assert answer.status_code == 404, path
    with web_store.transaction() as session:
        assert session.get(Mailbox, setup.pending).approval is Approval.PENDING  # type: ignore[union-attr]
        names = session.scalars(select(EmailServerProfile.name)).all()
        assert names == ["Office IMAP"]


def test_a_form_posted_without_the_csrf_token_is_refused(
    browser: TestClient, setup: Setup, web_store: Store
) -> None:
    log_in(browser)
    for path in (
        f"/admin/mailboxes/{setup.pending}/approve",
        f"/admin/mailboxes/{setup.failing}/test",
        "/admin/profiles",
    ):
        answer = browser.post(path, data={"name": "x", "server_type": "imap_smtp"})
        assert answer.status_code == 403, path
    with web_store.transaction() as session:
        assert session.get(Mailbox, setup.pending).approval is Approval.PENDING  # type: ignore[union-attr]
        assert len(session.scalars(select(EmailServerProfile)).all()) == 1


def _form_values(page: str, form_action: str) -> dict[str, str]:
    form = lxml.html.fromstring(page).xpath(f"//form[@action='{form_action}']")[0]
    return {k: v for k, v in form.form_values()}


def test_a_profile_is_created_and_edited_and_its_password_never_shown(
    browser: TestClient, setup: Setup, web_store: Store
) -> None:
    token = log_in(browser)
    new = browser.get("/admin/profiles/new")
    assert new.status_code == 200
    values = _form_values(new.text, "/admin/profiles")
    values.update(
        {
            "csrf_token": token,
            "name": "Head office",
            "incoming_host": "imap.head.test",
            "outgoing_host": "smtp.head.test",
            "credential_scope": "profile",
            "username": "master",
            "password": STORED_PASSWORD,
        }
    )
    created = browser.post("/admin/profiles", data=values)
    assert created.status_code == 303, created.text
    path = created.headers["location"]
    with web_store.transaction() as session:
        profile = session.scalars(
            select(EmailServerProfile).where(EmailServerProfile.name == "Head office")
        ).one()
        assert profile.incoming_port == 993  # the usual port for implicit TLS
        assert profile.password_ciphertext
        assert STORED_PASSWORD not in profile.password_ciphertext
        assert not profile.is_default
    page = browser.get(path).text
    assert STORED_PASSWORD not in page
    assert "set (leave empty to keep)" in page
    assert "Profile Head office created." in page
    edited = _form_values(page, path)
    assert edited.get("password", "") == ""
    edited.update({"csrf_token": token, "incoming_port": "1993", "password": ""})
    saved = browser.post(path, data=edited)
    assert saved.status_code == 303
    with web_store.transaction() as session:
        again = session.get(EmailServerProfile, profile.id)
        assert again is not None
        assert again.incoming_port == 1993
        assert again.password_ciphertext == profile.password_ciphertext  # kept
    listing = browser.get("/admin/profiles").text
    assert "imap.head.test:1993" in listing
    assert STORED_PASSWORD not in listing


def test_profile_errors_are_shown_next_to_their_fields_and_nothing_typed_is_lost(
    browser: TestClient, setup: Setup, web_store: Store
) -> None:
    token = log_in(browser)
    values = _form_values(browser.get("/admin/profiles/new").text, "/admin/profiles")
    values.update(
        {
            "csrf_token": token,
            "name": "Broken",
            "incoming_host": "imap broken.test",
            "incoming_port": "ninety",
            "outgoing_host": "smtp.broken.test",
            "password": STORED_PASSWORD,
        }
    )
    answer = browser.post("/admin/profiles", data=values)
    assert answer.status_code == 422
    tree = lxml.html.fromstring(answer.text)
    assert "without spaces" in tree.xpath("//p[@id='error-incoming_host']")[0].text_content()
    assert tree.xpath("//p[@id='error-incoming_port']")[0].text_content() == "Enter a whole number"
    assert tree.xpath("//input[@name='incoming_host']/@value") == ["imap broken.test"]
    assert tree.xpath("//input[@name='outgoing_host']/@value") == ["smtp.broken.test"]
    assert tree.xpath("//input[@name='name']/@value") == ["Broken"]
    assert STORED_PASSWORD not in answer.text
    # A rule of crm/profiles.py, not of the schema: a plain connection nobody allowed.
    values.update({"incoming_host": "imap.broken.test", "incoming_port": "143"})
    values["incoming_security"] = "plain"
    answer = browser.post("/admin/profiles", data=values)
    assert answer.status_code == 422
    error = lxml.html.fromstring(answer.text).xpath("//p[@id='error-incoming_security']")
    assert "allow_plaintext" in error[0].text_content()
    with web_store.transaction() as session:
        assert len(session.scalars(select(EmailServerProfile)).all()) == 1


def test_the_mailbox_form_saves_through_the_rules_and_never_shows_the_password(
    browser: TestClient, setup: Setup, web_store: Store
) -> None:
    token = log_in(browser)
    path = f"/admin/mailboxes/{setup.healthy}"
    page = browser.get(path)
    assert page.status_code == 200
    assert STORED_PASSWORD not in page.text
    assert "set (leave empty to keep)" in page.text
    values = _form_values(page.text, path)
    assert values["email_address"] == "carol@acme.test"
    assert values["profile_id"] == str(setup.profile_id)
    # A user's mailbox may not delete what it processed: refused next to the field,
    # with what was typed kept and nothing saved.
    refused = browser.post(
        path,
        data={
            **values,
            "csrf_token": token,
            "username": "carol.c",
            "delete_after_processing": "on",
        },
    )
    assert refused.status_code == 422
    tree = lxml.html.fromstring(refused.text)
    assert "queue and forward" in tree.xpath("//p[@id='error-delete_after_processing']")[0].text
    assert tree.xpath("//input[@name='username']/@value") == ["carol.c"]
    with web_store.transaction() as session:
        mailbox = session.get(Mailbox, setup.healthy)
        assert mailbox is not None
        assert mailbox.username is None
        assert mailbox.channel(Channel.INCOMING).enabled
        old_secret = mailbox.password_ciphertext
    # A new password: saved encrypted, the channels go off until tested again.
    saved = browser.post(
        path, data={**values, "csrf_token": token, "password": "a-new-password-42"}
    )
    assert saved.status_code == 303
    after = browser.get(path).text
    assert "Mailbox saved." in after
    assert "a-new-password-42" not in after
    with web_store.transaction() as session:
        mailbox = session.get(Mailbox, setup.healthy)
        assert mailbox is not None
        assert mailbox.password_ciphertext != old_secret
        assert not mailbox.channel(Channel.INCOMING).enabled
    # A changed address goes back to approval.
    moved = browser.post(
        path, data={**values, "csrf_token": token, "email_address": "carol@elsewhere.test"}
    )
    assert moved.status_code == 303
    with web_store.transaction() as session:
        mailbox = session.get(Mailbox, setup.healthy)
        assert mailbox is not None
        assert mailbox.approval is Approval.PENDING
        assert mailbox.email_address == "carol@elsewhere.test"


def test_test_and_enable_runs_in_the_background_and_lists_its_steps(
    browser: TestClient, setup: Setup
) -> None:
    log_in(browser)
    path = f"/admin/mailboxes/{setup.failing}"
    token = csrf_token(browser.get(path).text)
    started = browser.post(f"{path}/test", headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert started.status_code == 200
    fragment = lxml.html.fromstring(started.text)
    poll = fragment.xpath("//div[@id='test-run']/@hx-get")
    assert poll
    assert fragment.xpath("//div[@id='test-run']/@hx-trigger") == ["every 500ms"]
    deadline = time.monotonic() + 20
    while True:
        answer = browser.get(poll[0], headers={"HX-Request": "true"})
        tree = lxml.html.fromstring(answer.text)
        if not tree.xpath("//div[@id='test-run']/@hx-trigger"):
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    states = {
        step.get("data-step"): step.get("data-state") for step in tree.xpath("//li[@data-step]")
    }
    # Nothing listens on the profile's port: each channel stops at "tcp".
    assert states == {
        "incoming-dns": "ok",
        "incoming-tcp": "failed",
        "outgoing-dns": "ok",
        "outgoing-tcp": "failed",
    }
    failed = tree.xpath("//li[@data-step='incoming-tcp']")[0].text_content()
    assert "HOST_UNREACHABLE" in failed
    assert CATALOGUE[ErrorCode.HOST_UNREACHABLE].remediation in failed
    # The channel cards are replaced with the run's outcome, out of band.
    cards = tree.xpath("//section[@id='channel-states'][@hx-swap-oob='true']")
    assert cards
    assert "HOST_UNREACHABLE" in cards[0].text_content()
    page = browser.get(path).text
    assert (
        "Failed" in lxml.html.fromstring(page).xpath("//p[@class='test-summary']")[0].text_content()
    )


def test_a_run_of_another_mailbox_is_not_found_under_this_one(
    browser: TestClient, setup: Setup
) -> None:
    log_in(browser)
    path = f"/admin/mailboxes/{setup.failing}"
    token = csrf_token(browser.get(path).text)
    started = browser.post(f"{path}/test", headers={"HX-Request": "true", "X-CSRF-Token": token})
    poll = lxml.html.fromstring(started.text).xpath("//div[@id='test-run']/@hx-get")[0]
    other = poll.replace(str(setup.failing), str(setup.healthy))
    assert browser.get(other).status_code == 404
