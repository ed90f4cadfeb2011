"""The profile form's choice of sending without authentication: offered, explained, and
never made for the administrator (a new profile's form starts with "log in")."""

from __future__ import annotations

import lxml.html
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import OutgoingAuth
from crmsync.crm.models.mail import EmailServerProfile
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.web.conftest import log_in


def _form(page: str, action: str) -> dict[str, str]:
    form = lxml.html.fromstring(page).xpath(f"//form[@action='{action}']")[0]
    return dict(form.form_values())


def test_no_authentication_is_offered_with_a_warning_and_only_chosen_explicitly(
    browser: TestClient, web_store: Store, web_org: Org, web_app: object
) -> None:
    token = log_in(browser)
    new = browser.get("/admin/profiles/new")
    tree = lxml.html.fromstring(new.text)
    options = tree.xpath("//select[@name='outgoing_auth']/option")
    assert {o.get("value") for o in options} == {"same_as_incoming", "none"}
    assert tree.xpath("//select[@name='outgoing_auth']/option[@selected]/@value") == [
        "same_as_incoming"
    ]
    assert "nobody's password is checked" in tree.text_content()

    values = _form(new.text, "/admin/profiles")
    values.update(
        {
            "csrf_token": token,
            "name": "Relay",
            "incoming_host": "imap.office.test",
            "outgoing_host": "relay.office.test",
        }
    )
    assert browser.post("/admin/profiles", data=values).status_code == 303
    chosen = {**values, "name": "Trusted relay", "outgoing_auth": "none"}
    created = browser.post("/admin/profiles", data=chosen)
    assert created.status_code == 303, created.text
    with web_store.transaction() as session:
        found = {p.name: p.outgoing_auth for p in session.scalars(select(EmailServerProfile)).all()}
    assert found["Relay"] is OutgoingAuth.SAME_AS_INCOMING
    assert found["Trusted relay"] is OutgoingAuth.NONE
    page = lxml.html.fromstring(browser.get(created.headers["location"]).text)
    assert page.xpath("//select[@name='outgoing_auth']/option[@selected]/@value") == ["none"]
