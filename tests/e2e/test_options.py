"""Changing one's own tracking options in the browser."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, log_in

SHOTS = Path("/tmp/shots")


def test_a_changed_tracking_option_is_kept(page: Page, live_server: LiveServer) -> None:
    person = live_server.add_person("olga-options")
    log_in(page, person)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Options").click()
    expect(page).to_have_url(f"{live_server.url}/options")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your options")
    which = page.get_by_role("group", name="Which email to track")
    expect(which.get_by_role("radio", name="Replies to CRM email")).to_be_checked()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "options.png"), full_page=True)

    which.get_by_role("radio", name="Email from CRM records").check()
    unknown = page.get_by_role("group", name="When a sender is unknown")
    unknown.get_by_role("radio", name="Create a contact").check()
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(f"{live_server.url}/options")
    expect(page.get_by_role("status")).to_have_text("Saved")
    page.reload()
    expect(page.get_by_role("status")).to_have_count(0)
    expect(which.get_by_role("radio", name="Email from CRM records")).to_be_checked()
    expect(unknown.get_by_role("radio", name="Create a contact")).to_be_checked()
    expect(which.get_by_role("radio", name="Replies to CRM email")).not_to_be_checked()
