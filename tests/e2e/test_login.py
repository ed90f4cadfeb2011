"""Logging in and out, as a salesperson does it in the browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, log_in

SESSION_COOKIE = "crmsync_session"


def _cookie_names(page: Page) -> set[str]:
    return {cookie["name"] for cookie in page.context.cookies()}


def test_login_shows_home_with_the_users_name(page: Page, live_server: LiveServer) -> None:
    person = live_server.salesperson
    log_in(page, person)
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {person.full_name}")
    expect(page.locator(".topbar .who")).to_have_text(person.full_name)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Options")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)  # a salesperson
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies[SESSION_COOKIE]["httpOnly"] is True
    assert cookies[SESSION_COOKIE]["sameSite"] == "Strict"
    assert cookies["crmsync_csrf"]["httpOnly"] is False


def test_an_administrator_sees_the_admin_link(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server.admin)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Admin")).to_have_attribute("href", "/admin")


def test_a_wrong_password_shows_an_error_and_sets_no_cookie(
    page: Page, live_server: LiveServer
) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(live_server.salesperson.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value(live_server.salesperson.username)
    expect(page.get_by_label("Password")).to_have_value("")
    assert SESSION_COOKIE not in _cookie_names(page)
    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/login")


def test_log_out_ends_the_session(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server.salesperson)
    session = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/login")
    expect(page.get_by_role("status")).to_have_text("You have logged out.")
    assert SESSION_COOKIE not in _cookie_names(page)
    # The old session token is revoked, not merely forgotten by the browser.
    answer = page.request.get("/api/v1/tokens", headers={"Authorization": f"Bearer {session}"})
    assert answer.status == 401, answer.text()
    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/login")


def test_a_page_without_a_session_comes_back_after_login(
    page: Page, live_server: LiveServer
) -> None:
    page.goto("/?q=fabrikam")
    expect(page).to_have_url(f"{live_server.url}/login?next=/%3Fq%3Dfabrikam")
    page.get_by_label("Username").fill(live_server.salesperson.username)
    page.get_by_label("Password").fill(live_server.salesperson.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/?q=fabrikam")
    expect(page.get_by_role("searchbox")).to_have_value("fabrikam")


def test_next_never_leads_to_another_site(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server.salesperson, next_path="//evil.example/")
    expect(page).to_have_url(f"{live_server.url}/")
