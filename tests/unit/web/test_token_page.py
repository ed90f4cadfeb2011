"""The token list page: a person's own API and side panel tokens, each revocable once.

What a user would notice: their tokens and connected panels are listed with their
kind and dates, never anyone else's, never the token itself; Revoke ends one (the panel
using it is refused from then on); someone else's token cannot be revoked from here.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from lxml import html as lxml_html

from crmsync.core.types import TokenKind
from crmsync.crm.auth import issue_token
from crmsync.crm.models.org import ApiToken, User
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.web.conftest import assert_needs_login, csrf_token, log_in


def _issue(
    store: Store,
    user_id: uuid.UUID,
    name: str,
    kind: TokenKind = TokenKind.API,
    lifetime: timedelta | None = None,
) -> tuple[uuid.UUID, str]:
    with store.transaction() as session:
        user = session.get(User, user_id)
        assert user is not None
        row, clear = issue_token(session, user, name, kind=kind, lifetime=lifetime)
        return row.id, clear


def _rows(page: str) -> dict[str, list[str]]:
    """Each listed token's name → the texts of its cells (name cell: name and prefix)."""
    document = lxml_html.document_fromstring(page)
    rows = {}
    for row in document.xpath("//tr[@data-token-id]"):
        cells = [" ".join(cell.text_content().split()) for cell in row.xpath("./td")]
        rows[row.xpath(".//*[@class='token-name']")[0].text_content()] = cells
    return rows


def test_the_list_shows_only_ones_own_api_and_panel_tokens(
    browser: TestClient, web_store: Store, web_org: Org
) -> None:
    _, script = _issue(web_store, web_org.admin_id, "backup script")
    _issue(web_store, web_org.admin_id, "Outlook on LAPTOP-1", TokenKind.PANEL, timedelta(days=90))
    with web_store.transaction() as session:
        sally = web_org.add_user(session, "sally")
    _issue(web_store, sally, "sally's script")
    log_in(browser)
    page = browser.get("/options/tokens")
    assert page.status_code == 200
    rows = _rows(page.text)
    assert list(rows) == ["Outlook on LAPTOP-1", "backup script"]  # newest first
    panel = rows["Outlook on LAPTOP-1"]
    assert panel[1] == "Side panel"
    assert re.fullmatch(r"\d+ \w{3} \d{4}, \d\d:\d\d", panel[2])  # created
    assert panel[3] == "Never"  # never used
    assert re.fullmatch(r"\d+ \w{3} \d{4}, \d\d:\d\d", panel[4])  # expires in 90 days
    assert panel[5] == "Active"
    assert rows["backup script"][1] == "API token"
    assert rows["backup script"][4] == "Never"  # does not expire
    assert script not in page.text  # only its prefix is shown
    assert script[:11] in page.text
    assert "sally" not in page.text
    assert page.headers["cache-control"] == "no-store"


def test_revoking_a_panel_token_ends_the_panel_and_lists_it_as_revoked(
    browser: TestClient, web_store: Store, web_org: Org
) -> None:
    token_id, clear = _issue(web_store, web_org.admin_id, "Outlook", TokenKind.PANEL)
    bearer = {"Authorization": f"Bearer {clear}"}
    assert browser.get("/api/v1/panel/lookup", headers=bearer).status_code == 200
    log_in(browser)
    page = browser.get("/options/tokens")
    assert f'action="/options/tokens/{token_id}/revoke"' in page.text
    done = browser.post(
        f"/options/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(page.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/options/tokens"
    after = browser.get("/options/tokens")
    assert "Revoked “Outlook”" in after.text
    assert _rows(after.text)["Outlook"][5] == "Revoked"
    assert f"/options/tokens/{token_id}/revoke" not in after.text  # no second Revoke
    assert browser.get("/api/v1/panel/lookup", headers=bearer).status_code == 401


def test_nobody_revokes_anothers_token(browser: TestClient, web_store: Store, web_org: Org) -> None:
    with web_store.transaction() as session:
        sally = web_org.add_user(session, "sally")
    token_id, _ = _issue(web_store, sally, "sally's panel", TokenKind.PANEL)
    token = log_in(browser)
    refused = browser.post(f"/options/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert refused.status_code == 404
    missing = browser.post(f"/options/tokens/{uuid.uuid4()}/revoke", data={"csrf_token": token})
    assert missing.status_code == 404
    with web_store.transaction() as session:
        row = session.get(ApiToken, token_id)
        assert row is not None
        assert not row.revoked


def test_revoking_needs_the_csrf_token(browser: TestClient, web_store: Store, web_org: Org) -> None:
    token_id, _ = _issue(web_store, web_org.admin_id, "script")
    log_in(browser)
    for data in ({}, {"csrf_token": "forged"}):
        refused = browser.post(f"/options/tokens/{token_id}/revoke", data=data)
        assert refused.status_code == 403
    with web_store.transaction() as session:
        row = session.get(ApiToken, token_id)
        assert row is not None
        assert not row.revoked


def test_the_list_needs_a_login(browser: TestClient) -> None:
    assert_needs_login(browser, "/options/tokens")
