"""Finding a customer and reading their timeline, as a salesperson does in the browser.

Records are made through crm/ as the administrator (the salesperson's business unit
reads them); names are this file's own, since tests share the live server.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from crmsync.core.types import Direction, EmailStatus, Participation, Priority, RecordType
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Account, Appointment, Case, Contact, Email, Opportunity, Task
from tests.e2e.conftest import LiveServer, Watch, log_in

SHOTS = Path("/tmp/shots")
START = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
XSS = (
    "<p>Keeps <b>bold</b> text.</p>"
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
)


@dataclass(frozen=True)
class Customer:
    account: uuid.UUID
    contact: uuid.UUID
    email: uuid.UUID


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def _email(
    session: Any,
    admin: Any,
    subject: str,
    when: datetime,
    parties: list[PartySpec],
    *,
    outgoing: bool = False,
    body: str = "",
    regarding: tuple[RecordType, uuid.UUID] | None = None,
) -> uuid.UUID:
    values: dict[str, Any] = {
        "subject": subject,
        "actual_start": when,
        "direction": Direction.OUTGOING if outgoing else Direction.INCOMING,
        "status": EmailStatus.SENT if outgoing else EmailStatus.RECEIVED,
        "body_text": body,
    }
    if regarding is not None:
        values["regarding_type"], values["regarding_id"] = regarding
    return activities.create_activity(session, admin, Email, values, parties).id


def _halvorsen(live_server: LiveServer) -> Customer:
    """An account with a contact, a deal, a case and a timeline worth looking at."""
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(
            session,
            admin,
            Account,
            {
                "name": "Halvorsen Freight",
                "email1": "office@halvorsen.example",
                "phone": "+47 22 00 00 00",
                "website": "halvorsen.example",
                "description": "<p>Family-run <b>freight forwarder</b>, Oslo and Bergen.</p>",
            },
        )
        ingrid = records.create_record(
            session,
            admin,
            Contact,
            {
                "first_name": "Ingrid",
                "last_name": "Halvorsen",
                "email1": "ingrid@halvorsen.example",
                "phone": "+47 900 00 000",
                "job_title": "Head of purchasing",
                "account_id": account.id,
            },
        )
        records.create_record(
            session,
            admin,
            Contact,
            {
                "first_name": "Per",
                "last_name": "Lund",
                "job_title": "CFO",
                "account_id": account.id,
            },
        )
        deal = records.create_record(
            session,
            admin,
            Opportunity,
            {"name": "Fleet telematics", "account_id": account.id, "estimated_value": 84000},
        )
        records.create_record(
            session,
            admin,
            Case,
            {"title": "Invoice address wrong", "ticket_number": "HAL-17", "account_id": account.id},
        )
        ingrid_party = PartySpec(
            Participation.FROM, RecordType.CONTACT, ingrid.id, "ingrid@halvorsen.example"
        )
        _email(
            session,
            admin,
            "Introduction",
            START - timedelta(days=6),
            [PartySpec(Participation.TO, RecordType.CONTACT, ingrid.id)],
            outgoing=True,
            body="Hi Ingrid, thanks for meeting us at the fair. As promised, our brochure.",
        )
        appointment = activities.create_activity(
            session,
            admin,
            Appointment,
            {
                "subject": "Demo of the telematics portal",
                "location": "Bergen office",
                "scheduled_start": START - timedelta(days=2),
                "scheduled_end": START - timedelta(days=2, hours=-1),
                "regarding_type": RecordType.OPPORTUNITY,
                "regarding_id": deal.id,
            },
            [],
        )
        assert appointment.id
        activities.create_activity(
            session,
            admin,
            Task,
            {
                "subject": "Send the revised quote",
                "priority": Priority.HIGH,
                "scheduled_start": START - timedelta(hours=20),
                "regarding_type": RecordType.ACCOUNT,
                "regarding_id": account.id,
            },
            [],
        )
        email = _email(
            session,
            admin,
            "Pallet prices for May",
            START,
            [ingrid_party],
            body="Hello, could you send us your pallet prices for May? We expect 40 pallets "
            "a week from Bergen to Oslo. Best regards, Ingrid",
        )
        return Customer(account.id, ingrid.id, email)


def test_search_a_contact_and_read_the_email_on_contact_and_account(
    page: Page, live_server: LiveServer
) -> None:
    customer = _halvorsen(live_server)
    log_in(page, live_server.salesperson)
    box = page.get_by_role("searchbox", name="Search")
    box.press_sequentially("Ingrid", delay=40)
    result = page.locator("#search-results").get_by_role(
        "link", name=re.compile("Ingrid Halvorsen")
    )
    expect(result).to_be_visible()
    expect(result).to_contain_text("Contact")
    expect(result).to_contain_text("Halvorsen Freight")
    expect(page).to_have_url(f"{live_server.url}/")  # found as typed, nothing submitted
    _shot(page, "search.png")
    result.click()

    expect(page).to_have_url(f"{live_server.url}/contacts/{customer.contact}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ingrid Halvorsen")
    timeline = page.get_by_role("list", name="Timeline")
    newest = timeline.locator(".tl-item").first
    expect(newest).to_contain_text("Pallet prices for May")
    expect(newest).to_contain_text("From Ingrid Halvorsen")
    expect(newest.get_by_role("link", name="Pallet prices for May")).to_have_attribute(
        "href", f"/emails/{customer.email}"
    )
    _shot(page, "contact.png")

    page.locator(".details").get_by_role("link", name="Halvorsen Freight").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/{customer.account}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Halvorsen Freight")
    entry = page.locator(".tl-item", has_text="Pallet prices for May")
    expect(entry).to_contain_text("via Contact Ingrid Halvorsen")
    expect(entry.get_by_role("link", name="Ingrid Halvorsen")).to_have_attribute(
        "href", f"/contacts/{customer.contact}"
    )
    expect(page.locator(".tl-item")).to_have_count(4)
    expect(page.locator(".related").first).to_contain_text("Per Lund")
    _shot(page, "account.png")


def test_older_entries_load_into_the_timeline(page: Page, live_server: LiveServer) -> None:
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Tindholmen Ferries"})
        for n in range(23):
            _email(
                session,
                admin,
                f"Sailing report {n:02d}",
                START + timedelta(hours=n),
                [],
                regarding=(RecordType.ACCOUNT, account.id),
            )
    log_in(page, live_server.salesperson)
    page.goto(f"/accounts/{account.id}")
    items = page.locator(".timeline .tl-item")
    expect(items).to_have_count(20)
    page.get_by_role("link", name="Older").click()
    expect(items).to_have_count(23)
    expect(items.last).to_contain_text("Sailing report 00")
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    expect(page).to_have_url(f"{live_server.url}/accounts/{account.id}")  # loaded in place


def test_stored_html_in_a_description_never_runs(
    page: Page, live_server: LiveServer, watch: Watch
) -> None:
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(
            session, admin, Account, {"name": "Scriptorium Ltd", "description": XSS}
        )
    # The sanitised <img src="x"> is an image of this site that does not exist.
    watch.expect_console(r"status of 404 .*/accounts/x\)$")
    log_in(page, live_server.salesperson)
    page.goto(f"/accounts/{account.id}")
    description = page.locator(".description")
    expect(description).to_contain_text("Keeps bold text.")
    expect(description.locator("b")).to_have_text("bold")
    expect(description.locator("script")).to_have_count(0)
    page.wait_for_load_state("load")
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert description.locator("img").evaluate_all(
        "images => images.map(image => image.getAttribute('onerror'))"
    ) in ([], [None])


def test_a_record_of_another_unit_is_not_found(page: Page, live_server: LiveServer) -> None:
    org = live_server.org
    with org.store.transaction() as session:
        far = org.add_unit(session, "Far North")
        stranger = org.add_user(session, "far-owner", unit_id=far)
        admin = org.principal(session, org.admin_id)
        account = records.create_record(
            session, admin, Account, {"name": "Polar Secrets"}, owner_id=stranger
        )
    log_in(page, live_server.salesperson)
    response = page.goto(f"/accounts/{account.id}")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(page.locator("body")).not_to_contain_text("Polar Secrets")
