"""Administration in the browser: a salesperson finds none of it; an administrator gets
the overview and changes the organisation's settings.

Every route of the app under ``/admin`` is found from the app's own routes, so a page or
action added later is held to the same rule without touching this file: a salesperson
asking for it, with every method it takes, gets the 404 page — with real ids of things
that exist in its path, and a valid CSRF token on unsafe requests — and nothing in the
database changes.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from playwright.sync_api import Page, expect
from sqlalchemy import select

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.core.types import AlertSeverity, Channel, ChannelStatus, ServerType
from crmsync.crm.alerts import raise_alert, record_item_failure
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Base
from crmsync.crm.models.mail import EmailServerProfile, MailboxTest
from crmsync.crm.models.org import Organisation, User
from crmsync.crm.secrets import SecretBox
from tests.e2e.conftest import LiveServer, log_in

SHOTS = Path("/tmp/shots")
ADMIN_PREFIX = "/admin"
# Rows that change because someone logged in and looked, not because of an action.
NOT_STATE = {"api_tokens", "login_throttles"}
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def admin_routes(live_server: LiveServer, tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path template) of every route under /admin, from an app like the live one."""
    app = create_app(
        Settings(data_dir=tmp_path, secret_key=SecretBox.generate_key()), live_server.store
    )
    found = set()
    # The contexts, not app.routes: included routers are resolved there, with prefixes.
    for context in iter_route_contexts(app.routes):
        path = context.path_format or getattr(context.original_route, "path_format", "")
        if path != ADMIN_PREFIX and not path.startswith(ADMIN_PREFIX + "/"):
            continue
        for method in context.methods or ("GET",):
            if method != "HEAD":
                found.add((method, path))
    return sorted(found)


def existing_things(live_server: LiveServer) -> dict[str, str]:
    """Ids of real things of Acme, by the word a path parameter would name them with."""
    org = live_server.org
    with org.store.transaction() as session:
        owner = session.get(User, org.add_user(session, f"target-{uuid.uuid4().hex[:6]}"))
        assert owner is not None
        profile = EmailServerProfile(
            organisation_id=org.organisation_id,
            owner_id=org.admin_id,
            owning_business_unit_id=org.root_unit_id,
            name=f"Access probe {owner.username}",
            server_type=ServerType.IMAP_SMTP,
        )
        session.add(profile)
        session.flush()
        mailbox = create_mailbox_for(session, user=owner)
        mailbox.profile_id = profile.id
        mailbox.channel(Channel.INCOMING).status = ChannelStatus.FAILURE
        alert = raise_alert(
            session,
            organisation_id=org.organisation_id,
            severity=AlertSeverity.ERROR,
            code="ACCESS_PROBE",
            title="Probe",
            mailbox=mailbox,
        )
        failure = record_item_failure(
            session, mailbox, Channel.INCOMING, "uid:1", "PARSE_FAILED", "probe"
        )
        test = MailboxTest(mailbox_id=mailbox.id)
        session.add(test)
        session.flush()
        return {
            "mailbox": str(mailbox.id),
            "profile": str(profile.id),
            "alert": str(alert.id),
            "failure": str(failure.id),
            "item": str(failure.id),
            "test": str(test.id),
            "user": str(owner.id),
            "kind": "failure",
        }


def concrete(path: str, things: dict[str, str]) -> str:
    """``/admin/mailboxes/{mailbox_id}`` → ``/admin/mailboxes/<a real mailbox's id>``."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        for word, value in things.items():
            if word in name:
                return value
        return str(uuid.uuid4())

    return _PARAM.sub(fill, path)


def snapshot(live_server: LiveServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that holds the organisation's state."""
    with live_server.store.transaction() as session:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in session.execute(select(table))), key=repr
            )
            for table in Base.metadata.sorted_tables
            if table.name not in NOT_STATE
        }


@pytest.fixture
def salesperson_page(page: Page, live_server: LiveServer) -> Page:
    person = live_server.add_person(f"sally-{uuid.uuid4().hex[:6]}")
    log_in(page, person)
    return page


def test_a_salesperson_gets_the_404_page_on_every_admin_page_and_action(
    salesperson_page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    page = salesperson_page
    routes = admin_routes(live_server, tmp_path)
    # The pages this file knows are there; the rest are found the same way.
    for expected in ("/admin", "/admin/settings", "/admin/mailboxes", "/admin/alerts"):
        assert ("GET", expected) in routes
    assert any(method == "POST" for method, _ in routes)

    things = existing_things(live_server)
    page.goto("/")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")
    ).to_have_count(0)
    assert page.locator('a[href^="/admin"]').count() == 0
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    before = snapshot(live_server)

    answered = []
    for method, template in routes:
        url = concrete(template, things)
        if method == "GET":
            response = page.request.get(url, max_redirects=0)
        else:
            response = page.request.fetch(
                url,
                method=method,
                headers={"Origin": live_server.url, "X-CSRF-Token": token},
                form={"csrf_token": token, "email_domain": "evil.example", "password": "x"},
                max_redirects=0,
            )
        answered.append((method, url, response.status))
        assert response.status == 404, f"{method} {url} answered {response.status}"
        assert "There is no such page" in response.text(), f"{method} {url}"
        assert response.headers["content-type"].startswith("text/html")

    assert snapshot(live_server) == before, "a salesperson's request changed something"
    assert len(answered) == len(routes)


def test_an_administrator_reaches_the_pages_the_salesperson_could_not(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    """The same addresses, ids and all, are pages for an administrator: the 404s above
    were the salesperson's, not wrong addresses."""
    things = existing_things(live_server)
    log_in(page, live_server.admin)
    for method, template in admin_routes(live_server, tmp_path):
        if method != "GET":
            continue
        url = concrete(template, things)
        response = page.request.get(url, max_redirects=0)
        assert response.status == 200, f"GET {url} answered {response.status}"


def test_the_overview_and_the_settings_page(page: Page, live_server: LiveServer) -> None:
    org = live_server.org
    with org.store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        saved = dict(organisation.settings)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        log_in(page, live_server.admin)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        expect(page).to_have_url(f"{live_server.url}/admin")
        expect(page.get_by_role("heading", level=1)).to_have_text("Administration")
        sub = page.get_by_role("navigation", name="Administration")
        expect(sub.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
        expect(page.locator("#count-pending")).to_have_text(re.compile(r"^[1-9]\d*$"))
        page.screenshot(path=str(SHOTS / "admin-home.png"), full_page=True, caret="initial")

        sub.get_by_role("link", name="Settings").click()
        expect(page).to_have_url(f"{live_server.url}/admin/settings")
        expect(page.locator("#token-example")).to_contain_text("Quote for May CRM:0001234")
        page.get_by_label("Domain of Message-IDs").fill("-not-a-domain")
        page.get_by_label("Blocked senders").fill("News@Example.com\nexa_mple.com")
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved")
        expect(page.locator("#error-email_domain")).to_be_visible()
        expect(page.locator("#error-blocked_senders")).to_contain_text("Line 2")
        page.screenshot(
            path=str(SHOTS / "admin-settings-errors.png"), full_page=True, caret="initial"
        )

        page.get_by_label("Domain of Message-IDs").fill("Bücher.Example")
        page.get_by_label("Blocked senders").fill("News@Example.com\n*.spam.example")
        page.get_by_label("Token prefix").fill("ACME-")
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_role("status")).to_have_text("Saved")
        expect(page.get_by_label("Domain of Message-IDs")).to_have_value("xn--bcher-kva.example")
        expect(page.get_by_label("Blocked senders")).to_have_value("news@example.com\nspam.example")
        expect(page.locator("#token-example")).to_contain_text("Quote for May ACME-0001234")
        expect(page.locator("#message-id-example")).to_contain_text("@xn--bcher-kva.example>")
        page.screenshot(path=str(SHOTS / "admin-settings.png"), full_page=True, caret="initial")
    finally:
        # The live server is shared: the next test finds the settings as they were.
        with org.store.transaction() as session:
            organisation = session.get(Organisation, org.organisation_id)
            assert organisation is not None
            organisation.settings = saved
