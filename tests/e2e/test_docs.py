"""/docs and /redoc work offline: every asset from the instance, nothing blocked by the CSP."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer


def test_swagger_ui_renders_offline_and_tries_the_api_with_the_web_session(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    """Logged in to the web app, "Try it out" works with the cookie, CSRF token included."""
    page.request.post(
        "/api/v1/auth/login",
        data={"username": live_server.admin.username, "password": live_server.admin.password},
        headers={"Origin": live_server.url},
    )
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("crmsync")
    authorize = page.get_by_role("button", name="Authorize")
    expect(authorize).to_be_visible()
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "docs.png"))
    authorize.click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_contain_text("bearer (http, Bearer)")
    expect(dialog).to_contain_text("crmsync_session")
    dialog.get_by_role("button", name="Close").first.click()

    operation = page.locator("#operations-auth-create_token_api_v1_tokens_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill('{"name": "from the docs"}')
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("201")
    tokens = page.request.get("/api/v1/tokens").json()
    assert "from the docs" in [token["name"] for token in tokens]


def test_redoc_renders_offline(page: Page, live_server: LiveServer, tmp_path: Path) -> None:
    page.goto("/redoc")
    # ReDoc renders the whole document at once: seconds on a small machine.
    expect(page.locator("h1").first).to_contain_text("crmsync", timeout=30_000)
    expect(page.get_by_role("menuitem").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "redoc.png"))
