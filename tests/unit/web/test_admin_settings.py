"""The administrators' home and the organisation settings page: what an administrator
sees and saves, and the 404 page for everyone else."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import AlertSeverity, AlertState, Approval, Channel, ChannelStatus
from crmsync.crm.alerts import raise_alert, record_item_failure
from crmsync.crm.auth import hash_password
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Organisation, User
from tests.conftest import Org
from tests.unit.web.conftest import log_in

SETTINGS = "/admin/settings"
# Every route this module owns, with the methods it answers.
OWN_ROUTES = (("GET", "/admin"), ("GET", SETTINGS), ("POST", SETTINGS))


def add_person(org: Org, username: str) -> uuid.UUID:
    with org.store.transaction() as session:
        user_id = org.add_user(session, username)
        user = session.get(User, user_id)
        assert user is not None
        user.password_hash = hash_password(f"{username}-password")
        return user_id


def stored(org: Org) -> dict[str, object]:
    with org.store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        return dict(organisation.settings)


def full_form(page: str) -> dict[str, str]:
    """What the browser would send: every input, textarea and checked box of the form."""
    form: dict[str, str] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page):
        form[name] = value
    for name, value in re.findall(r'<input type="text"[^>]* name="([^"]+)" value="([^"]*)"', page):
        form[name] = value
    for name in re.findall(
        r'<input type="checkbox"[^>]* name="([^"]+)" value="true" checked', page
    ):
        form[name] = "true"
    for name, text in re.findall(r'<textarea[^>]* name="([^"]+)"[^>]*>([^<]*)</textarea>', page):
        form[name] = text.replace("&#39;", "'").replace("&amp;", "&")
    return form


def test_the_home_counts_mailboxes_alerts_and_failures(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        healthy, failing = (
            create_mailbox_for(session, user=session.get(User, web_org.add_user(session, name)))
            for name in ("hana", "fred")
        )
        for mailbox in (healthy, failing):
            mailbox.approval = Approval.APPROVED
        healthy.channel(Channel.INCOMING).status = ChannelStatus.SUCCESS
        failing.channel(Channel.INCOMING).status = ChannelStatus.FAILURE
        # Sending works: a mailbox with one failing channel is failing all the same.
        failing.channel(Channel.OUTGOING).status = ChannelStatus.SUCCESS
        raised = [
            raise_alert(
                session,
                organisation_id=web_org.organisation_id,
                severity=severity,
                code=f"CODE_{severity.value}_{uuid.uuid4().hex[:6]}",
                title="Something",
                mailbox=failing,
            )
            for severity in (AlertSeverity.ERROR,) * 3 + (AlertSeverity.WARNING,)
        ]
        # A dismissed alert is no problem any more: it is not counted.
        raised[0].state = AlertState.DISMISSED
        record_item_failure(session, failing, Channel.INCOMING, "uid:7", "PARSE_FAILED", "bad")
        pending = session.scalars(select(Mailbox).where(Mailbox.approval == Approval.PENDING))
        pending_count = len(list(pending))
    log_in(browser)
    page = browser.get("/admin")
    assert page.status_code == 200
    text = page.text

    def count(tile: str) -> int:
        found = re.search(rf'id="count-{tile}">(\d+)<', text)
        assert found, tile
        return int(found.group(1))

    assert count("failing") == 1
    assert count("healthy") == 1
    assert count("pending") == pending_count >= 1  # the administrator's own mailbox waits
    assert count("alerts-error") == 2
    assert count("alerts-warning") == 1
    assert count("alerts-information") == 0
    assert count("failures") == 1
    for link in ("/admin/mailboxes?show=failing", "/admin/triage", "/admin/settings"):
        assert f'href="{link}"' in text
    assert 'aria-current="page">Overview</a>' in text


def test_the_settings_page_explains_and_shows_an_example_token(
    browser: TestClient, web_org: Org
) -> None:
    log_in(browser)
    page = browser.get(SETTINGS)
    assert page.status_code == 200
    assert "Quote for May CRM:0001234" in page.text
    assert 'value="crmsync.invalid"' in page.text
    assert "Message-ID" in page.text


def test_saving_the_settings_stores_them_normalised(browser: TestClient, web_org: Org) -> None:
    log_in(browser)
    form = full_form(browser.get(SETTINGS).text)
    form.update(
        email_domain="Bücher.Example",
        tracking_token_prefix="ACME-",
        tracking_token_digits="5",
        blocked_senders="Spam@Example.com\n\n*.news.example\nspam@example.com\n",
        max_message_bytes="10",
    )
    response = browser.post(SETTINGS, data=form)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == SETTINGS
    page = browser.get(SETTINGS).text
    assert "Saved" in page
    assert "Quote for May ACME-01234" in page
    settings = stored(web_org)
    assert settings["email_domain"] == "xn--bcher-kva.example"
    assert settings["blocked_senders"] == ["spam@example.com", "news.example"]
    assert settings["max_message_bytes"] == 10 * 1024 * 1024
    # An unchanged size keeps its exact byte count; unchecked boxes mean no.
    assert settings["max_attachment_bytes"] == 25 * 1024 * 1024
    form.pop("use_tracking_token")
    assert browser.post(SETTINGS, data=form).status_code == 303
    assert stored(web_org)["use_tracking_token"] is False


def test_every_error_is_shown_next_to_its_field_and_nothing_is_saved(
    browser: TestClient, web_org: Org
) -> None:
    log_in(browser)
    form = full_form(browser.get(SETTINGS).text)
    form.update(
        email_domain="-bad.example",
        tracking_token_prefix="CRM 1",
        blocked_senders="ok.example\nexa_mple.com",
        tracking_token_digits="99",
    )
    response = browser.post(SETTINGS, data=form)
    assert response.status_code == 422
    text = response.text
    for name in ("email_domain", "tracking_token_prefix", "tracking_token_digits"):
        assert f'id="error-{name}"' in text, name
    assert "Line 2:" in text
    assert "Nothing was saved" in text
    assert 'value="-bad.example"' in text  # what was typed is kept
    assert stored(web_org) == {}


def test_the_form_needs_its_csrf_token(browser: TestClient, web_org: Org) -> None:
    log_in(browser)
    form = full_form(browser.get(SETTINGS).text)
    form["csrf_token"] = "forged"
    form["email_domain"] = "evil.example"
    assert browser.post(SETTINGS, data=form).status_code == 403
    assert stored(web_org) == {}


@pytest.mark.parametrize(("method", "path"), OWN_ROUTES)
def test_a_salesperson_gets_the_404_page(
    browser: TestClient, web_org: Org, method: str, path: str
) -> None:
    add_person(web_org, "sam")
    token = log_in(browser, "sam", "sam-password")
    data = {"csrf_token": token, "email_domain": "evil.example", "tracking_token_prefix": "X:"}
    response = browser.request(method, path, data=data if method == "POST" else None)
    assert response.status_code == 404
    assert "There is no such page" in response.text
    assert "crmsync.invalid" not in response.text
    assert stored(web_org) == {}
    assert 'href="/admin"' not in browser.get("/").text
