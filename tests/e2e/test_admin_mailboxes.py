"""Browser test: an administrator finds a mailbox failing on a real Dovecot, reads why in
the table, fixes its password in the form and watches Test & Enable turn every step green.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from crmsync.core.errors import CATALOGUE, ErrorCode
from crmsync.crm import directory
from crmsync.crm.access import load_principal
from crmsync.crm.models.org import User
from tests.e2e.conftest import LiveServer, log_in
from tests.servers import DovecotServer, SmtpServer

SHOTS = Path("/tmp/shots")
# Records every state the step list goes through, from outside the page (no page script).
OBSERVE_STEPS = """
() => {
  window.__stepStates = [];
  const record = () => {
    const steps = [...document.querySelectorAll("#test-run li[data-step]")];
    window.__stepStates.push(steps.map((step) => step.dataset.state).join(","));
  };
  new MutationObserver(record).observe(document.querySelector("main"), {
    childList: true, subtree: true, attributes: true,
  });
}
"""


def _add_user(live_server: LiveServer, username: str, address: str) -> None:
    with live_server.store.transaction() as session:
        admin = session.get(User, live_server.org.admin_id)
        assert admin is not None
        directory.create_user(
            session,
            load_principal(admin),
            username=username,
            full_name=username.replace("-", " ").title(),
            business_unit_id=live_server.org.root_unit_id,
            email_addresses=[address],
        )


def _create_profile(page: Page, name: str, dovecot: DovecotServer, smtp: SmtpServer) -> None:
    assert dovecot.ca_cert is not None
    page.goto("/admin/profiles/new")
    page.locator("#field-name").fill(name)
    page.locator("#field-incoming_host").fill("127.0.0.1")
    page.locator("#field-incoming_port").fill(str(dovecot.imap_port))
    page.locator("#field-incoming_security").select_option("starttls")
    page.locator("#field-outgoing_host").fill("127.0.0.1")
    page.locator("#field-outgoing_port").fill(str(smtp.port))
    page.locator("#field-outgoing_security").select_option("starttls")
    page.locator("#field-ca_pem").fill(dovecot.ca_cert.read_text())
    page.get_by_role("button", name="Create profile").click()
    expect(page.get_by_text(f"Profile {name} created.")).to_be_visible()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True, caret="initial")


def _test_and_enable(page: Page) -> None:
    page.get_by_role("button", name="Test & Enable").click()
    expect(page.locator("#test-run")).not_to_have_attribute("data-state", "running")


def test_a_failing_mailbox_is_found_fixed_and_tested_green(
    page: Page,
    live_server: LiveServer,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    watch: Any,
) -> None:
    tag = secrets.token_hex(3)
    mail_user = dovecot.add_user(f"grace-{tag}", f"right-{tag}-password")
    full_name = f"Grace {tag}"
    _add_user(live_server, f"grace-{tag}", mail_user.address)
    log_in(page, live_server.admin, "/admin/mailboxes")
    _create_profile(page, f"Dovecot {tag}", dovecot, smtp_server)

    # The new mailbox awaits approval: approve it from the table.
    page.goto("/admin/mailboxes?show=pending")
    page.get_by_role("button", name=f"Approve {full_name}").click()
    expect(page.get_by_text(f"{full_name}'s mailbox approved.")).to_be_visible()

    # Its profile and a wrong password, then a Test & Enable that fails.
    page.goto("/admin/mailboxes")
    page.get_by_role("link", name=full_name).click()
    page.locator("#field-profile_id").select_option(label=f"Dovecot {tag}")
    page.locator("#field-password").fill("a-wrong-password")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Mailbox saved.")).to_be_visible()
    _test_and_enable(page)
    expect(page.locator("#test-run")).to_have_attribute("data-state", "failed")

    # The table shows it failing, with what to do about it.
    remediation = CATALOGUE[ErrorCode.AUTH_FAILED].remediation
    page.goto("/admin/mailboxes?show=failing")
    row = page.locator("tr.mailbox-row", has=page.get_by_role("link", name=full_name))
    incoming = row.locator("td[data-channel=incoming]")
    expect(incoming).to_contain_text("Failing")
    expect(incoming).to_contain_text("AUTH_FAILED")
    expect(incoming).to_contain_text(remediation)
    expect(row).to_have_class("mailbox-row row-failing")
    _shot(page, "admin-mailboxes-failing.png")

    # The administrator opens it, types the right password and runs Test & Enable again.
    row.get_by_role("link", name=full_name).click()
    expect(page.locator("#channel-states")).to_contain_text("AUTH_FAILED")
    page.locator("#field-password").fill(mail_user.password)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Mailbox saved.")).to_be_visible()
    assert mail_user.password not in page.content()
    page.evaluate(OBSERVE_STEPS)
    _test_and_enable(page)
    expect(page.locator("#test-run")).to_have_attribute("data-state", "ok")
    steps = page.locator("#test-run li[data-step]")
    expect(steps).to_have_count(10)  # dns, tcp, tls, auth, inbox · dns, tcp, tls, ehlo, auth
    for index in range(10):
        expect(steps.nth(index)).to_have_attribute("data-state", "ok")
    seen: list[str] = page.evaluate("window.__stepStates")
    # The list was drawn while the run went on (some step still to do), then all green.
    assert any("running" in states or "pending" in states for states in seen), seen
    assert seen[-1] == ",".join(["ok"] * 10), seen
    expect(page.locator("#channel-states [data-channel=incoming]")).to_contain_text("OK")
    expect(page.locator("#channel-states [data-channel=incoming]")).not_to_contain_text(
        "AUTH_FAILED"
    )
    _shot(page, "admin-mailbox-tested.png")

    page.goto("/admin/mailboxes")
    row = page.locator("tr.mailbox-row", has=page.get_by_role("link", name=full_name))
    expect(row.locator("td[data-channel=incoming]")).to_contain_text("OK")
    expect(row.locator("td[data-channel=incoming]")).to_contain_text("push (IDLE)")
    _shot(page, "admin-mailboxes.png")
