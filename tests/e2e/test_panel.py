"""The side panel in a 320-pixel pane: connect, add an unknown sender, track, revoke.

As a salesperson without the add-in does it: the panel opened for an email their
mailbox saw but did not track offers to connect; the connect dialog (a popup, logged in
there) hands the panel a code; the panel adds the unknown sender as a contact and
tracks the email; revoking the panel's token on the token page ends it — its next
action is refused and it offers to connect again.

Screenshots at 320 pixels go to $CRMSYNC_SHOTS (default /tmp/shots).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import Page, expect
from sqlalchemy import select

from crmsync.core.types import TokenKind
from crmsync.crm.models import Contact, Email
from crmsync.crm.models.org import ApiToken, User
from tests.e2e.conftest import LiveServer, Watch
from tests.unit.api.panel_support import add_seen_message

PANE = {"width": 320, "height": 800}
MESSAGE_ID = "<rfq-2026-031@customer.example>"
SENDER = "Unknown Sender <new.person@customer.example>"
SUBJECT = "Request for quote: 40 licences"
SHOTS = Path(os.environ.get("CRMSYNC_SHOTS", "/tmp/shots"))


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_panel_connects_adds_the_sender_tracks_the_email_and_a_revoke_ends_it(
    page: Page, live_server: LiveServer, watch: Watch
) -> None:
    person = live_server.add_person("panel-pat")
    with live_server.store.transaction() as session:
        pat = session.scalars(select(User).where(User.username == person.username)).one()
        pat_id = pat.id
    add_seen_message(
        live_server.store,
        pat_id,
        MESSAGE_ID,
        sender=SENDER,
        to="Panel Pat <pat@acme.test>",
        subject=SUBJECT,
    )
    page.set_viewport_size(PANE)
    query = urlencode(
        {
            "message_id": MESSAGE_ID,
            "from": SENDER,
            "to": "Panel Pat <pat@acme.test>",
            "subject": SUBJECT,
        }
    )
    page.goto(f"/panel?{query}")

    # Not connected: the panel offers to connect, and nothing else.
    connect = page.get_by_role("button", name="Connect to crmsync")
    expect(connect).to_be_visible()
    expect(page.locator("#panel-main")).to_be_hidden()
    _shot(page, "panel-1-connect")

    # The dialog: log in there, press the button; the panel gets the code by itself.
    with page.expect_popup() as opened:
        connect.click()
    dialog = opened.value
    dialog.on("console", watch.on_console)
    dialog.on("pageerror", lambda error: watch.report(f"uncaught exception: {error}"))
    dialog.get_by_label("Username").fill(person.username)
    dialog.get_by_label("Password").fill(person.password)
    dialog.get_by_role("button", name="Log in").click()
    expect(dialog.get_by_role("heading", name="Connect the side panel")).to_be_visible()
    expect(dialog.get_by_text(person.full_name)).to_be_visible()
    dialog.set_viewport_size({"width": 460, "height": 640})
    _shot(dialog, "panel-2-dialog")
    with dialog.expect_event("close"):
        dialog.get_by_role("button", name="Connect the side panel").click()
    expect(page.get_by_text("Connected to crmsync.")).to_be_visible()
    expect(page.locator(".panel-connected")).to_be_visible()

    # The unknown sender, added as a contact.
    sender = page.locator("li.panel-person", has_text="new.person@customer.example")
    expect(sender.get_by_text("Not in the CRM")).to_be_visible()
    expect(page.locator(".panel-badge", has_text="Not tracked")).to_be_visible()
    expect(page.get_by_role("heading", name=SUBJECT)).to_be_visible()
    _shot(page, "panel-3-connected")
    sender.get_by_role("button", name="Add as contact").click()
    expect(sender.locator(".panel-badge", has_text="Contact")).to_be_visible()
    record = sender.get_by_role("link", name="Unknown Sender")
    expect(record).to_have_attribute("href", re.compile(r"^/contacts/[0-9a-f-]{36}$"))
    expect(record).to_have_attribute("target", "_blank")

    # Tracked, and regarding the new contact (search as you type).
    page.get_by_role("button", name="Track").click()
    expect(page.locator(".panel-badge", has_text="Tracked")).to_be_visible()
    page.get_by_role("button", name="Set regarding").click()
    page.get_by_role("searchbox").fill("Unknown Sen")
    hit = page.get_by_role("button", name=re.compile(r"^Unknown Sender\s*Contact"))
    expect(hit).to_be_visible()
    _shot(page, "panel-4-regarding-search")
    hit.click()
    expect(page.locator("#panel-regarding")).to_contain_text("Regarding Unknown Sender")
    _shot(page, "panel-5-tracked")
    with live_server.store.transaction() as session:
        email = session.scalars(select(Email).where(Email.message_id == MESSAGE_ID)).one()
        contact = session.scalars(
            select(Contact).where(Contact.email1 == "new.person@customer.example")
        ).one()
        assert (email.regarding_type, email.regarding_id) == ("contact", contact.id)
        assert email.owner_id == pat_id
        assert contact.owner_id == pat_id

    # The owner revokes the panel's token on the token page (their cookie session).
    tokens = page.context.new_page()
    tokens.set_viewport_size({"width": 1100, "height": 700})
    tokens.goto("/options")
    tokens.get_by_role("link", name="Tokens and side panels").click()
    expect(tokens).to_have_url(re.compile(r"/options/tokens$"))
    row = tokens.locator("tr.token-row", has_text="Side panel in a browser")
    expect(row).to_contain_text("Side panel")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Revoke").click()
    expect(tokens.get_by_text("it no longer works")).to_be_visible()
    expect(row).to_contain_text("Revoked")
    _shot(tokens, "tokens-revoked")
    tokens.close()

    # The panel's next action is refused, and the panel offers to connect again.
    watch.expect_console(r"status of 401")
    page.get_by_role("button", name="Untrack").click()
    page.locator(".panel-confirm").get_by_role("button", name="Untrack").click()
    expect(page.get_by_role("button", name="Connect to crmsync")).to_be_visible()
    expect(page.get_by_text("connection to crmsync has ended")).to_be_visible()
    expect(page.locator("#panel-main")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('crmsync.panelToken')") is None
    _shot(page, "panel-6-revoked")
    with live_server.store.transaction() as session:
        assert session.scalars(select(Email.id).where(Email.message_id == MESSAGE_ID)).one()


def test_a_typed_code_connects_the_panel_and_disconnect_ends_it(
    page: Page, live_server: LiveServer, watch: Watch
) -> None:
    person = live_server.add_person("panel-quinn")
    page.set_viewport_size(PANE)
    page.goto("/panel?" + urlencode({"from": "Ann Buyer <ann.buyer@customer.example>"}))
    watch.expect_console(r"status of 401")  # the wrong code below
    page.get_by_label("Or type the code crmsync showed you").fill("ZZZZ-ZZZZ")
    page.get_by_role("button", name="Use code").click()
    expect(page.get_by_text("That code is unknown, used or expired")).to_be_visible()

    # The dialog opened by hand (no panel opened it): the code is shown, to be typed.
    dialog = page.context.new_page()
    dialog.goto("/panel/connect")
    dialog.get_by_label("Username").fill(person.username)
    dialog.get_by_label("Password").fill(person.password)
    dialog.get_by_role("button", name="Log in").click()
    dialog.get_by_role("button", name="Connect the side panel").click()
    code = dialog.locator("#connect-code").inner_text()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    dialog.close()

    page.get_by_label("Or type the code crmsync showed you").fill(code.lower())
    page.get_by_role("button", name="Use code").click()
    buyer = page.locator("li.panel-person", has_text="ann.buyer@customer.example")
    expect(buyer.get_by_role("button", name="Add as lead")).to_be_visible()
    expect(page.get_by_text("has no Message-ID")).to_be_visible()

    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("Disconnected.")).to_be_visible()
    expect(page.get_by_role("button", name="Connect to crmsync")).to_be_visible()
    with live_server.store.transaction() as session:
        quinn = session.scalars(select(User.id).where(User.username == person.username)).one()
        panels = session.scalars(
            select(ApiToken).where(ApiToken.user_id == quinn, ApiToken.kind == TokenKind.PANEL)
        ).all()
        assert [(token.name, token.revoked) for token in panels] == [
            ("Side panel in a browser", True)
        ]


# Office.js stands in for Microsoft's script (the only foreign one the add-in loads): the
# item, the dialog and messageParent, recorded on window for the test to drive.
OFFICE_STUB = """
window.__office = {};
window.Office = {
  AsyncResultStatus: { Succeeded: "succeeded" },
  EventType: { DialogMessageReceived: "dialogMessageReceived", ItemChanged: "itemChanged" },
  onReady: function (ready) { window.setTimeout(ready, 0); },
  context: {
    diagnostics: { platform: "OfficeOnline" },
    mailbox: {
      item: {
        internetMessageId: "<office-1@customer.example>",
        from: { displayName: "Doe, Jane", emailAddress: "jane.doe@customer.example" },
        to: [{ displayName: "Panel Rae", emailAddress: "rae@acme.test" }],
        cc: [],
        subject: "Hello from Outlook"
      },
      addHandlerAsync: function () {}
    },
    ui: {
      displayDialogAsync: function (url, options, done) {
        window.__office.dialogUrl = url;
        done({ status: "succeeded", value: {
          addEventHandler: function (type, handler) { window.__office.handler = handler; },
          close: function () { window.__office.closed = true; }
        } });
      },
      messageParent: function (message) { window.__office.sent = message; }
    }
  }
};
"""


def test_as_the_outlook_add_in_the_panel_reads_the_item_and_connects_through_office(
    page: Page, live_server: LiveServer
) -> None:
    person = live_server.add_person("panel-rae")
    page.context.route(
        "https://appsforoffice.microsoft.com/**",
        lambda route: route.fulfill(body=OFFICE_STUB, content_type="text/javascript"),
    )
    page.set_viewport_size(PANE)
    page.goto("/panel?host=outlook")
    page.get_by_role("button", name="Connect to crmsync").click()
    dialog_url = page.evaluate("window.__office.dialogUrl")
    assert dialog_url == f"{live_server.url}/panel/connect?host=outlook"

    dialog = page.context.new_page()
    dialog.goto(dialog_url)
    dialog.get_by_label("Username").fill(person.username)
    dialog.get_by_label("Password").fill(person.password)
    dialog.get_by_role("button", name="Log in").click()
    dialog.get_by_role("button", name="Connect the side panel").click()
    expect(dialog.locator("#connect-code")).to_be_visible()
    expect(dialog.locator("#connect-status")).to_contain_text("Sent to the side panel")
    code = dialog.evaluate("window.__office.sent")
    assert code == dialog.locator("#connect-code").inner_text()
    dialog.close()

    page.evaluate("code => window.__office.handler({ message: code })", code)
    expect(page.get_by_text("Connected to crmsync.")).to_be_visible()
    assert page.evaluate("window.__office.closed") is True
    # The item's people, a display name with a comma kept whole.
    jane = page.locator("li.panel-person", has_text="jane.doe@customer.example")
    expect(jane.locator(".panel-person-name")).to_have_text("Doe, Jane")
    expect(page.get_by_role("heading", name="Hello from Outlook")).to_be_visible()
    with live_server.store.transaction() as session:
        rae = session.scalars(select(User.id).where(User.username == person.username)).one()
        names = session.scalars(
            select(ApiToken.name).where(ApiToken.user_id == rae, ApiToken.kind == TokenKind.PANEL)
        ).all()
        assert names == ["Outlook OfficeOnline"]
