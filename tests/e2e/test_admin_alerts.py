"""An administrator at the alert wall and the triage queue, in Chromium.

The untracked items come from one incoming pass through the engine's storing step
(tests/unit/web/test_admin_alerts.seed_untracked): a contact's order that failed to parse
under the organisation's size limit of the day, since raised, and a prospect's message
seen but not tracked because the mailbox tracks only email from CRM records.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from crmsync.core.types import AlertState
from crmsync.crm.models import Alert, Contact
from tests.e2e.conftest import LiveServer, log_in
from tests.unit.web.test_admin_alerts import seed_alerts, seed_untracked

SHOTS = Path("/tmp/shots")


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True, caret="initial")


def test_an_administrator_acknowledges_an_alert_and_fixes_the_triage_queue(
    live_server: LiveServer, page: Page
) -> None:
    untracked = seed_untracked(live_server.store, live_server.org, "triage-sam")
    alert_ids = seed_alerts(live_server.store, live_server.org, untracked.mailbox_id)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.admin, "/admin/alerts")

    # The alert wall: the failing login first; acknowledging it says so in place.
    card = page.locator(f"#alert-{alert_ids['AUTH_FAILED']}")
    expect(card).to_contain_text("Fix AUTH_FAILED.")
    _shot(page, "admin-alerts.png")
    card.get_by_role("button", name="Acknowledge").click()
    expect(card).to_contain_text("Alert acknowledged")
    expect(card).to_contain_text("by Administrator")
    expect(card.get_by_role("button", name="Acknowledge")).to_have_count(0)
    _shot(page, "admin-alerts-acknowledged.png")
    with live_server.store.transaction() as session:
        alert = session.get(Alert, alert_ids["AUTH_FAILED"])
        assert alert is not None
        assert alert.state is AlertState.ACKNOWLEDGED

    # The triage queue: retry the order that failed under yesterday's limit.
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Triage").click()
    order = page.locator(f"#item-{untracked.failure_id}")
    expect(order).to_contain_text("Quarterly order")
    expect(order).to_contain_text("MALFORMED_MESSAGE")
    prospect = page.locator(f"#item-{untracked.unknown_id}")
    expect(prospect).to_contain_text("Not tracked: unknown sender")
    expect(prospect).to_contain_text("dave@newcorp.test")
    _shot(page, "admin-triage.png")
    order.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(r"/emails/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Quarterly order")
    expect(page.locator("#notices")).to_contain_text("Email tracked")
    _shot(page, "admin-triage-retried.png")

    # Then the prospect: make him a contact, and the message is tracked against him.
    page.goto("/admin/triage")
    expect(page.locator(f"#item-{untracked.failure_id}")).to_have_count(0)
    prospect.get_by_role("button", name="Create contact, then re-run").click()
    page.wait_for_url(re.compile(r"/emails/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Interested in a demo")
    with live_server.store.transaction() as session:
        dave = session.scalars(select(Contact).where(Contact.email1 == "dave@newcorp.test")).one()
        dave_url = f"/contacts/{dave.id}"
    expect(page.locator(f'a[href="{dave_url}"]').first).to_be_visible()
    _shot(page, "admin-triage-contact-created.png")

    page.goto("/admin/triage?show=resolved")
    expect(page.locator(f"#item-{untracked.failure_id}")).to_contain_text("Tracked")
    _shot(page, "admin-triage-resolved.png")
