"""Reading a tracked email in the browser: why it was tracked, setting what it regards,
and a hostile HTML body that runs nothing and fetches nothing until the reader asks.

Emails are tracked as a person tracks one by hand (tests/unit/web/test_email_page.py
builds them): a reply to a CRM quote, in the administrator's mailbox. Names and
Message-IDs carry a tag of this file's own, since tests share the live server. No HTML
file is attached here: a crawl of every page (test_pages.py) would try to open it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import Page, Route, expect

from crmsync.crm import records
from crmsync.crm.models import Account
from tests.e2e.conftest import LiveServer, Watch, log_in
from tests.unit.web.test_email_page import PIXEL, Tracked, tracked_reply

SHOTS = Path("/tmp/shots")
REMOTE_IMAGE = "https://remote.example/x.png"


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret leaves style="" on every input, which htmx would
    # copy onto the inputs it swaps in (its attribute settling), against the CSP.
    page.screenshot(path=str(SHOTS / name), full_page=True, caret="initial")


def _reply(live_server: LiveServer) -> tuple[Tracked, str]:
    tag = uuid.uuid4().hex[:8]
    return tracked_reply(live_server.org, f"e2e-{tag}", with_attachments=False), tag


def test_open_an_email_see_why_it_was_tracked_and_set_its_regarding(
    page: Page, live_server: LiveServer
) -> None:
    reply, tag = _reply(live_server)
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(
            session, admin, Account, {"name": f"Northwind Traders {tag}"}
        )
    log_in(page, live_server.admin, f"/emails/{reply.email_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Re: Your quote")

    why = page.locator("#why")
    expect(why).to_contain_text("In reply to")
    expect(why).to_contain_text("its In-Reply-To or References header")
    expect(why).to_contain_text("tracked by Administrator")
    matched = why.get_by_role("link", name=f"Your quote e2e-{tag}")
    expect(matched).to_be_visible()
    _shot(page, "email-page.png")

    matched.click()
    page.wait_for_url(f"**/emails/{reply.quote_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Your quote e2e-{tag}")
    page.go_back()
    page.wait_for_url(f"**/emails/{reply.email_id}")

    regarding = page.locator("#regarding")
    expect(regarding).to_contain_text("Nothing yet.")
    regarding.get_by_role("searchbox").press_sequentially(f"wind Traders {tag[:4]}")
    choice = regarding.get_by_role("button", name=f"Northwind Traders {tag}")
    expect(choice).to_be_visible()
    _shot(page, "email-regarding-search.png")
    choice.click()
    link = page.locator("#regarding").get_by_role("link", name=f"Northwind Traders {tag}")
    expect(link).to_have_attribute("href", f"/accounts/{account.id}")
    expect(page.locator("#regarding")).to_contain_text("Regarding set")
    page.reload()  # it was saved, not only shown
    expect(page.locator("#regarding").get_by_role("link")).to_have_text(f"Northwind Traders {tag}")

    page.set_viewport_size({"width": 420, "height": 900})
    _shot(page, "email-page-narrow.png")


def test_a_hostile_body_runs_nothing_and_fetches_remote_images_only_when_asked(
    page: Page, live_server: LiveServer, watch: Watch
) -> None:
    reply, _tag = _reply(live_server)
    log_in(page, live_server.admin, f"/emails/{reply.email_id}")
    frame = page.frame_locator("iframe.email-iframe")
    expect(frame.locator("b")).to_have_text("Alice")
    # The inline logo is the email's own attachment, embedded; the remote one held back.
    expect(frame.locator('img[alt="logo"]')).to_have_js_property("naturalWidth", 1)
    expect(frame.locator('img[alt="remote"]')).to_have_attribute("data-blocked", "")
    expect(frame.locator("script")).to_have_count(0)
    expect(page).to_have_title("Re: Your quote · crmsync")
    iframe = page.locator("iframe.email-iframe")
    expect(iframe).to_have_attribute("sandbox", "allow-popups allow-popups-to-escape-sandbox")
    # Nothing has tried to reach remote.example: the watch fails the test on any attempt.
    assert watch.take() == []

    asked: list[str] = []

    def remote(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=PIXEL)

    page.route("https://remote.example/**", remote)
    with page.expect_request(REMOTE_IMAGE):
        page.get_by_role("link", name="Show remote images").click()
    expect(iframe).to_have_attribute("src", f"/emails/{reply.email_id}/body?images=remote")
    expect(frame.locator('img[alt="remote"]')).to_have_js_property("naturalWidth", 1)
    expect(page.get_by_text("Remote images are blocked")).to_have_count(0)
    assert asked == [REMOTE_IMAGE]
    expect(page).to_have_title("Re: Your quote · crmsync")
    # The sandboxed frame paints in its own process; a full-page shot taken at once
    # would catch it blank.
    page.wait_for_timeout(500)
    _shot(page, "email-remote-images.png")
