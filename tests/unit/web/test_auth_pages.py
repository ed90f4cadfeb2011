"""The login and logout pages: the API's login behind a form, and nothing more lenient."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmsync.crm import throttle
from crmsync.crm.store import Store
from tests.conftest import Org, make_org
from tests.unit.web.conftest import OWN, csrf_token, log_in

ADMIN = {"username": "admin-acme", "password": "admin-password"}


def _set_cookies(response_headers: list[str], name: str) -> list[str]:
    return [header for header in response_headers if header.startswith(f"{name}=")]


def test_the_form_asks_for_no_organisation_when_there_is_one(browser: TestClient) -> None:
    page = browser.get("/login")
    assert page.status_code == 200
    assert 'name="username"' in page.text
    assert 'name="organisation"' not in page.text


def test_the_form_asks_for_the_organisation_when_there_are_several(
    browser: TestClient, web_store: Store, web_org: Org
) -> None:
    make_org(web_store, "Fabrikam")
    assert 'name="organisation"' in browser.get("/login").text
    unnamed = browser.post("/login", data=ADMIN)
    assert unnamed.status_code == 422
    assert "several organisations" in unnamed.text
    named = browser.post("/login", data={**ADMIN, "organisation": "Acme"})
    assert named.status_code == 303


def test_login_sets_the_session_and_csrf_cookies_as_the_api_does(browser: TestClient) -> None:
    response = browser.post("/login", data=ADMIN)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookies = response.headers.get_list("set-cookie")
    (session,) = _set_cookies(cookies, "crmsync_session")
    (csrf,) = _set_cookies(cookies, "crmsync_csrf")
    assert "HttpOnly" in session
    assert "samesite=strict" in session.lower()
    assert "Secure" not in session  # plain http
    assert "HttpOnly" not in csrf
    assert "samesite=strict" in csrf.lower()
    assert csrf_token(browser.get("/").text) == browser.cookies["crmsync_csrf"]


def test_cookies_are_secure_behind_https(web_app: FastAPI) -> None:
    origin = {"Origin": "https://testserver"}
    with TestClient(
        web_app, base_url="https://testserver", follow_redirects=False, headers=origin
    ) as client:
        response = client.post("/login", data=ADMIN)
    assert response.status_code == 303
    for cookie in response.headers.get_list("set-cookie"):
        assert "Secure" in cookie


def test_a_wrong_password_shows_the_form_again_without_the_password(browser: TestClient) -> None:
    response = browser.post("/login", data={"username": "admin-acme", "password": "s3cret-guess"})
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert 'value="admin-acme"' in response.text
    assert "s3cret-guess" not in response.text
    assert "set-cookie" not in response.headers
    unknown = browser.post("/login", data={"username": "nobody", "password": "s3cret-guess"})
    assert unknown.status_code == 401
    assert "Wrong username or password." in unknown.text  # no username oracle


def test_missing_fields_are_asked_for(browser: TestClient) -> None:
    response = browser.post("/login", data={"username": "admin-acme"})
    assert response.status_code == 422
    assert "Enter your username and password." in response.text


def test_failures_through_the_api_lock_the_form_too(browser: TestClient) -> None:
    """One throttle for both doors: the form is the API's login, not a second one."""
    for n in range(throttle.ACCOUNT_POLICY.free_failures + 1):
        guess = browser.post(
            "/api/v1/auth/login", json={"username": "admin-acme", "password": f"guess-{n}"}
        )
        assert guess.status_code == 401
    locked = browser.post("/login", data=ADMIN)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert "Too many failed logins" in locked.text
    assert "set-cookie" not in locked.headers


def test_login_goes_on_to_next_but_never_off_site(browser: TestClient) -> None:
    went = browser.post("/login", data={**ADMIN, "next": "/?q=fabrikam"})
    assert went.headers["location"] == "/?q=fabrikam"
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        browser.cookies.clear()
        response = browser.post("/login", data={**ADMIN, "next": target})
        assert response.headers["location"] == "/", target


def test_the_login_page_sends_the_logged_in_on(browser: TestClient) -> None:
    log_in(browser)
    response = browser.get("/login?next=/somewhere")
    assert response.status_code == 303
    assert response.headers["location"] == "/somewhere"


def test_a_login_form_posted_from_another_site_is_refused(browser: TestClient) -> None:
    response = browser.post("/login", data=ADMIN, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in response.headers


def test_logout_revokes_the_session_and_clears_the_cookies(browser: TestClient) -> None:
    token = log_in(browser)
    session = browser.cookies["crmsync_session"]
    response = browser.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    cleared = response.headers.get_list("set-cookie")
    assert any(c.startswith('crmsync_session=""') for c in cleared)
    assert any(c.startswith('crmsync_csrf=""') for c in cleared)
    assert "You have logged out." in browser.get("/login").text
    browser.cookies.set("crmsync_session", session)  # the old cookie, kept by an attacker
    assert browser.get("/").status_code == 303
    api = browser.get("/api/v1/tokens", headers={"Authorization": f"Bearer {session}"})
    assert api.status_code == 401


def test_logout_needs_the_csrf_token_and_our_origin(browser: TestClient) -> None:
    token = log_in(browser)
    missing = browser.post("/logout", data={})
    assert missing.status_code == 403
    assert missing.headers["content-type"].startswith("text/html")
    wrong = browser.post("/logout", data={"csrf_token": "forged"})
    assert wrong.status_code == 403
    foreign = browser.post(
        "/logout", data={"csrf_token": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert "did not come from a page of this site" in foreign.text
    by_header = browser.post("/logout", headers={"X-CSRF-Token": token, "Origin": OWN})
    assert by_header.status_code == 303  # htmx sends it as a header
