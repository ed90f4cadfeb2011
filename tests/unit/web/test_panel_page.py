"""The side panel's page and its connect dialog: what they load, and the code they give.

The panel page takes no credential (panel.js calls the API with the panel token); its
Content-Security-Policy lets a foreign script in only when the page runs as the Outlook
add-in, and then only Microsoft's Office.js. The connect dialog is a cookie-session page
that issues a one-time code on a CSRF-checked button press.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import TokenKind
from crmsync.crm.models.org import ApiToken, User
from crmsync.crm.store import Store
from crmsync.web.pages.panel import OFFICE_JS
from crmsync.web.security import DEFAULT_CSP
from tests.conftest import Org
from tests.unit.web.conftest import assert_needs_login, csrf_token, log_in

CODE = re.compile(r'data-code="([0-9A-Z]{4}-[0-9A-Z]{4})"')
FOREIGN = re.compile(r"""(?:src|href)=["']https?://""")


def _connect(browser: TestClient, host: str = "") -> str:
    """Press the dialog's button; the page it answers."""
    page = browser.get("/panel/connect" + (f"?host={host}" if host else ""))
    assert page.status_code == 200, page.text
    pressed = browser.post(
        "/panel/connect", data={"csrf_token": csrf_token(page.text), "host": host}
    )
    assert pressed.status_code == 200, pressed.text
    return pressed.text


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?message_id=%3Ca%40b.example%3E&from=Ann+%3Cann%40b.example%3E&subject=Hi",
        "?host=thunderbird",
        "?_host_Info=Word$Win32$16.01$en-US",
    ],
)
def test_in_a_plain_browser_the_panel_loads_nothing_from_elsewhere(
    browser: TestClient, query: str
) -> None:
    page = browser.get("/panel" + query)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DEFAULT_CSP
    assert not FOREIGN.search(page.text)
    assert "js/panel.js" in page.text
    assert 'class="narrow' in page.text  # the 320-pixel layout
    assert 'data-outlook="false"' in page.text


@pytest.mark.parametrize("query", ["?host=outlook", "?_host_Info=Outlook$Win32$16.02$en-US"])
def test_as_the_outlook_add_in_the_panel_loads_office_js_and_may_be_framed_by_outlook(
    browser: TestClient, query: str
) -> None:
    page = browser.get("/panel" + query)
    assert page.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self' https://appsforoffice.microsoft.com"
    assert "https://outlook.office.com" in policy["frame-ancestors"].split()
    assert policy["default-src"] == "'self'"  # nothing else is widened
    assert f'<script src="{OFFICE_JS}"></script>' in page.text
    assert FOREIGN.findall(page.text) == ['src="https://']
    # The connect dialog it opens is the add-in's too.
    assert 'data-connect-url="/panel/connect?host=outlook"' in page.text


def test_the_panel_needs_no_login_and_shows_nothing_personal(
    browser: TestClient, web_org: Org
) -> None:
    anonymous = browser.get("/panel")
    assert anonymous.status_code == 200
    log_in(browser)
    logged_in = browser.get("/panel")
    assert "Administrator" not in logged_in.text
    assert "admin-acme" not in logged_in.text


def test_the_connect_dialog_asks_to_log_in_first(browser: TestClient) -> None:
    assert_needs_login(browser, "/panel/connect?host=outlook", "/panel/connect%3Fhost%3Doutlook")


def test_the_connect_button_gives_a_code_that_connects_a_panel_of_its_user(
    browser: TestClient, web_store: Store, web_org: Org
) -> None:
    log_in(browser)
    dialog = browser.get("/panel/connect")
    assert dialog.headers["content-security-policy"] == DEFAULT_CSP
    assert "Connect the side panel" in dialog.text
    assert not CODE.search(dialog.text)  # no code before the button is pressed
    answer = _connect(browser)
    found = CODE.search(answer)
    assert found, answer
    assert "no-store" in browser.get("/panel/connect").headers["cache-control"]
    exchanged = browser.post(
        "/api/v1/panel/tokens", json={"code": found.group(1), "name": "Outlook on LAPTOP-1"}
    )
    assert exchanged.status_code == 201, exchanged.text
    with web_store.transaction() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "Outlook on LAPTOP-1")).one()
        owner = session.get(User, row.user_id)
        assert owner is not None
        assert (row.kind, owner.username) == (TokenKind.PANEL, "admin-acme")
    again = browser.post("/api/v1/panel/tokens", json={"code": found.group(1), "name": "twice"})
    assert again.status_code == 401  # single use


def test_in_outlook_the_dialog_loads_office_js_to_hand_the_code_over(
    browser: TestClient, web_org: Org
) -> None:
    log_in(browser)
    answer = _connect(browser, host="outlook")
    assert f'<script src="{OFFICE_JS}"></script>' in answer
    assert 'data-outlook="true"' in answer
    assert CODE.search(answer)


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        (None, {"Origin": "http://evil.example"}),
    ],
)
def test_no_code_without_the_csrf_token_and_our_origin(
    browser: TestClient,
    web_store: Store,
    web_org: Org,
    data: dict[str, str] | None,
    headers: dict[str, str],
) -> None:
    token = log_in(browser)
    refused = browser.post(
        "/panel/connect", data=data if data is not None else {"csrf_token": token}, headers=headers
    )
    assert refused.status_code == 403
    assert not CODE.search(refused.text)
    with web_store.transaction() as session:
        codes = select(ApiToken).where(ApiToken.kind == TokenKind.CONNECT_CODE)
        assert session.scalars(codes).all() == []
