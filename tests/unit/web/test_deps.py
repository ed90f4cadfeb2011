"""Who may see a page: only a web session, sent to log in otherwise, never off-site."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crmsync.core.types import TokenKind
from crmsync.crm.auth import hash_password, issue_token
from crmsync.crm.models.org import User
from crmsync.web.deps import login_url, safe_next
from tests.conftest import Org
from tests.unit.web.conftest import log_in


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/accounts/1?tab=emails", "/accounts/1?tab=emails"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/path", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/\tevil", "/"),
        ("/login?next=/x", "/"),
        ("/logout", "/"),
    ],
)
def test_next_is_only_ever_a_path_of_this_site(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_the_login_url_carries_next_encoded() -> None:
    assert login_url("/?q=a b&c=d") == "/login?next=/%3Fq%3Da%20b%26c%3Dd"
    assert login_url("/") == "/login"
    assert login_url("//evil.example") == "/login"


def test_a_page_without_a_session_redirects_to_login(browser: TestClient) -> None:
    response = browser.get("/?q=fabrikam")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/%3Fq%3Dfabrikam"


def test_htmx_without_a_session_is_told_where_to_log_in(browser: TestClient) -> None:
    response = browser.get(
        "/search?q=x",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?q=x"},
    )
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?next=/%3Fq%3Dx"


def test_an_unsafe_request_without_a_session_goes_to_login_without_next(
    browser: TestClient,
) -> None:
    response = browser.post("/logout", data={})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


@pytest.mark.parametrize("kind", [TokenKind.API, TokenKind.PANEL])
def test_only_a_web_session_opens_pages(browser: TestClient, web_org: Org, kind: TokenKind) -> None:
    with web_org.store.transaction() as session:
        admin = session.get(User, web_org.admin_id)
        assert admin is not None
        _row, token = issue_token(session, admin, "not a web login", kind=kind)
    browser.cookies.set("crmsync_session", token)
    response = browser.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_a_bearer_token_opens_no_page(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        admin = session.get(User, web_org.admin_id)
        assert admin is not None
        _row, token = issue_token(session, admin, "script")
    response = browser.get("/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 303


def test_the_navigation_shows_admin_to_administrators_only(
    browser: TestClient, web_org: Org
) -> None:
    with web_org.store.transaction() as session:
        user = session.get(User, web_org.add_user(session, "sam"))
        assert user is not None
        user.password_hash = hash_password("sam-password")
    log_in(browser)
    assert 'href="/admin"' in browser.get("/").text
    browser.cookies.clear()
    log_in(browser, "sam", "sam-password")
    home = browser.get("/").text
    assert 'href="/admin"' not in home
    assert 'href="/options"' in home
    assert "Sam" in home
