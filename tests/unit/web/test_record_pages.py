"""Search results and record pages: what a person sees, and what they never see.

Records and emails are made through crm/ as an administrator; pages are read through
the login form as the person named, like a browser would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi.testclient import TestClient
from lxml import html as lxml_html

from crmsync.core.types import Direction, EmailStatus, Participation, RecordType
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.auth import hash_password
from crmsync.crm.models import Account, Case, Contact, Lead, Opportunity, Task, User
from tests.conftest import Org
from tests.unit.crm.activity_support import add_email
from tests.unit.web.conftest import assert_needs_login, log_in

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PASSWORD = "a-long-password"


@dataclass
class Contoso:
    account: uuid.UUID
    nancy: uuid.UUID
    deal: uuid.UUID
    ticket: uuid.UUID
    lead: uuid.UUID
    email: uuid.UUID


def _person(web_org: Org, session: Any, username: str, **kwargs: Any) -> uuid.UUID:
    user_id = web_org.add_user(session, username, **kwargs)
    user = session.get(User, user_id)
    user.password_hash = hash_password(PASSWORD)
    return user_id


# Received from outside, ``minutes`` after START.
_email = partial(add_email, start=START, direction=Direction.INCOMING, status=EmailStatus.RECEIVED)


def _contoso(web_org: Org) -> Contoso:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        account = records.create_record(
            session,
            admin,
            Account,
            {"name": "Contoso", "email1": "hello@contoso.example", "phone": "+1 555 0100"},
        )
        nancy = records.create_record(
            session,
            admin,
            Contact,
            {
                "first_name": "Nancy",
                "last_name": "Buyer",
                "email1": "nancy@contoso.example",
                "job_title": "Purchasing",
                "account_id": account.id,
            },
        )
        deal = records.create_record(
            session,
            admin,
            Opportunity,
            {"name": "200 seats", "account_id": account.id, "estimated_value": 48000},
        )
        ticket = records.create_record(
            session,
            admin,
            Case,
            {"title": "Printer on fire", "ticket_number": "CAS-1", "account_id": account.id},
        )
        lead = records.create_record(
            session,
            admin,
            Lead,
            {"subject": "Wants a demo", "first_name": "Lee", "last_name": "Ad"},
        )
        email = _email(
            session,
            admin,
            "Quote for 200 seats",
            5,
            parties=[
                PartySpec(
                    Participation.FROM,
                    RecordType.CONTACT,
                    nancy.id,
                    address="nancy@contoso.example",
                )
            ],
            body_text="Hello,   could you send\nthe quote?",
        )
        return Contoso(account.id, nancy.id, deal.id, ticket.id, lead.id, email)


def _document(text: str) -> Any:
    return lxml_html.document_fromstring(text)


def _timeline(text: str) -> list[str]:
    """Each timeline entry's text, whitespace folded."""
    return [
        " ".join(" ".join(item.itertext()).split())
        for item in _document(text).xpath("//li[contains(@class, 'tl-item')]")
    ]


# ---- search ---------------------------------------------------------------------------


def test_search_finds_records_by_name_and_address_and_links_each(
    browser: TestClient, web_org: Org
) -> None:
    contoso = _contoso(web_org)
    log_in(browser)
    page = browser.get("/search", params={"q": "nancy"}, headers={"HX-Request": "true"})
    assert page.status_code == 200
    results = _document(page.text).xpath("//a[@class='result']")
    assert [" ".join(a.text_content().split()) for a in results] == [
        "Contact Nancy Buyer nancy@contoso.example · Contoso"
    ]
    assert results[0].get("href") == f"/contacts/{contoso.nancy}"

    by_address = browser.get("/", params={"q": "hello@contoso.example"})
    links = _document(by_address.text).xpath("//a[@class='result']/@href")
    assert links == [f"/accounts/{contoso.account}"]

    everything = browser.get("/", params={"q": "s"}).text
    labels = _document(everything).xpath("//a[@class='result']/span[1]/text()")
    assert {"Account", "Contact", "Lead", "Opportunity", "Case"} <= set(labels)


def test_an_empty_search_shows_nothing_and_a_fruitless_one_says_so(
    browser: TestClient, web_org: Org
) -> None:
    _contoso(web_org)
    log_in(browser)
    blank = browser.get("/search", params={"q": "  "}, headers={"HX-Request": "true"})
    assert blank.status_code == 200
    assert blank.text.strip() == ""
    none = browser.get("/search", params={"q": "zebra"}, headers={"HX-Request": "true"})
    assert "No records found" in none.text
    assert "zebra" in none.text


def test_search_never_shows_what_the_viewer_may_not_read(browser: TestClient, web_org: Org) -> None:
    contoso = _contoso(web_org)
    with web_org.store.transaction() as session:
        north = web_org.add_unit(session, "North")
        _person(web_org, session, "sam", unit_id=north)
    log_in(browser, "sam", PASSWORD)
    page = browser.get("/", params={"q": "nancy"})
    assert "Nancy" not in page.text.replace('value="nancy"', "")
    assert str(contoso.nancy) not in page.text
    assert "No records found" in page.text


# ---- record pages ---------------------------------------------------------------------


def test_a_contact_page_shows_its_details_account_and_email(
    browser: TestClient, web_org: Org
) -> None:
    contoso = _contoso(web_org)
    log_in(browser)
    page = browser.get(f"/contacts/{contoso.nancy}")
    assert page.status_code == 200
    document = _document(page.text)
    assert document.xpath("string(//h1)") == "Nancy Buyer"
    details = {
        dt.text_content().strip(): dt.getnext().text_content().strip()
        for dt in document.xpath("//dl[@class='details']//dt")
    }
    assert details["Email"] == "nancy@contoso.example"
    assert details["Account"] == "Contoso"
    assert details["Job title"] == "Purchasing"
    assert details["Owner"]
    assert f'href="/accounts/{contoso.account}"' in page.text
    assert _timeline(page.text) == [
        "Email · Received 2 Mar 2026, 09:35 Quote for 200 seats From Nancy Buyer "
        "Hello, could you send the quote?"
    ]
    assert f'href="/emails/{contoso.email}"' in page.text


def test_an_account_timeline_shows_its_contacts_email_via_the_contact(
    browser: TestClient, web_org: Org
) -> None:
    contoso = _contoso(web_org)
    log_in(browser)
    page = browser.get(f"/accounts/{contoso.account}")
    assert page.status_code == 200
    (entry,) = _timeline(page.text)
    assert "Quote for 200 seats" in entry
    assert "via Contact Nancy Buyer" in entry
    via = _document(page.text).xpath("//span[@class='tl-via']/a/@href")
    assert via == [f"/contacts/{contoso.nancy}"]
    related = _document(page.text).xpath("//ul[@class='related-list']//a/@href")
    assert set(related) == {
        f"/contacts/{contoso.nancy}",
        f"/opportunities/{contoso.deal}",
        f"/cases/{contoso.ticket}",
    }


def test_every_record_type_has_its_page(browser: TestClient, web_org: Org) -> None:
    contoso = _contoso(web_org)
    log_in(browser)
    pages = {
        f"/opportunities/{contoso.deal}": ("200 seats", "48,000.00"),
        f"/cases/{contoso.ticket}": ("Printer on fire", "CAS-1"),
        f"/leads/{contoso.lead}": ("Lee Ad", "Wants a demo"),
    }
    for path, (title, detail) in pages.items():
        page = browser.get(path)
        assert page.status_code == 200, path
        assert _document(page.text).xpath("string(//h1)") == title
        assert detail in page.text
        assert "Nothing on the timeline yet" in page.text


def test_an_email_regarding_another_record_names_it(browser: TestClient, web_org: Org) -> None:
    contoso = _contoso(web_org)
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        _email(
            session,
            admin,
            "Seats confirmed",
            9,
            regarding=(RecordType.OPPORTUNITY, contoso.deal),
            parties=[PartySpec(Participation.FROM, RecordType.CONTACT, contoso.nancy)],
        )
    log_in(browser)
    newest = _timeline(browser.get(f"/contacts/{contoso.nancy}").text)[0]
    assert "Seats confirmed" in newest
    assert "regarding Opportunity 200 seats" in newest


def test_a_malformed_or_unknown_id_is_the_not_found_page(browser: TestClient, web_org: Org) -> None:
    contoso = _contoso(web_org)
    log_in(browser)
    for path in (
        "/contacts/not-a-uuid",
        f"/contacts/{uuid.uuid4()}",
        f"/accounts/{contoso.nancy}",  # a contact's id is no account
        f"/contacts/{contoso.nancy}/timeline/x",
    ):
        page = browser.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "There is no such page, or it is not yours to see." in page.text


def test_a_salesperson_cannot_open_another_units_record(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        north = web_org.add_unit(session, "North")
        south = web_org.add_unit(session, "South")
        _person(web_org, session, "ann", unit_id=north)
        cid = _person(web_org, session, "cid", unit_id=south)
        admin = web_org.principal(session, web_org.admin_id)
        secret = records.create_record(
            session,
            admin,
            Account,
            {"name": "Southern Secret", "description": "<p>Only for the south</p>"},
            owner_id=cid,
        )
    log_in(browser, "ann", PASSWORD)
    for path in (f"/accounts/{secret.id}", f"/accounts/{secret.id}/timeline"):
        page = browser.get(path, headers={"HX-Request": "true"})
        assert page.status_code == 404, path
        assert "Southern Secret" not in page.text
        assert "Only for the south" not in page.text
    browser.cookies.clear()
    log_in(browser, "cid", PASSWORD)
    page = browser.get(f"/accounts/{secret.id}")
    assert page.status_code == 200
    assert "Only for the south" in page.text


def test_a_link_to_a_record_the_viewer_may_not_read_is_not_shown(
    browser: TestClient, web_org: Org
) -> None:
    with web_org.store.transaction() as session:
        north = web_org.add_unit(session, "North")
        south = web_org.add_unit(session, "South")
        ann = _person(web_org, session, "ann", unit_id=north)
        cid = _person(web_org, session, "cid", unit_id=south)
        admin = web_org.principal(session, web_org.admin_id)
        hidden = records.create_record(
            session, admin, Account, {"name": "Hidden Holdings"}, owner_id=cid
        )
        nancy = records.create_record(
            session,
            admin,
            Contact,
            {"last_name": "Visible", "account_id": hidden.id},
            owner_id=ann,
        )
    log_in(browser, "ann", PASSWORD)
    page = browser.get(f"/contacts/{nancy.id}")
    assert page.status_code == 200
    assert "Hidden Holdings" not in page.text
    assert str(hidden.id) not in page.text


def test_a_description_is_shown_sanitised(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        account = records.create_record(
            session,
            admin,
            Account,
            {
                "name": "Scripted",
                "description": "<p>Key <b>customer</b></p><script>window.__pwned=1</script>"
                '<img src=x onerror="window.__pwned=2">',
            },
        )
    log_in(browser)
    page = browser.get(f"/accounts/{account.id}")
    description = _document(page.text).xpath("//div[@class='description']")[0]
    markup = lxml_html.tostring(description, encoding="unicode")
    assert "<b>customer</b>" in markup
    assert "<script" not in markup
    assert "onerror" not in markup


# ---- the timeline's pages --------------------------------------------------------------


def _many_emails(web_org: Org, count: int) -> uuid.UUID:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Busy"})
        for minute in range(count):
            _email(
                session,
                admin,
                f"Message {minute:02d}",
                minute,
                regarding=(RecordType.ACCOUNT, account.id),
            )
        task = activities.create_activity(
            session,
            admin,
            Task,
            {
                "subject": "Call back",
                "regarding_type": RecordType.ACCOUNT,
                "regarding_id": account.id,
                "scheduled_start": START - timedelta(days=1),
            },
            [],
        )
        assert task.occurred_at == START - timedelta(days=1)
        return account.id


def _subjects(text: str) -> list[str]:
    return (
        [
            " ".join(node.text_content().split())
            for node in _document(text).xpath("//p[@class='tl-subject']")
        ]
        if text.strip()
        else []
    )


def test_the_timeline_is_paged_newest_first_with_and_without_htmx(
    browser: TestClient, web_org: Org
) -> None:
    account = _many_emails(web_org, 24)
    log_in(browser)
    page = browser.get(f"/accounts/{account}")
    first = _subjects(page.text)
    assert first == [f"Message {n:02d}" for n in range(23, 3, -1)]  # 20, newest first
    (older,) = _document(page.text).xpath("//li[@class='tl-more']/a")
    assert older.text_content().strip() == "Older"

    # With htmx: the next items alone, in place of the "Older" item.
    fragment = browser.get(older.get("hx-get"), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert _subjects(fragment.text) == [
        "Message 03",
        "Message 02",
        "Message 01",
        "Message 00",
        "Call back",
    ]
    assert "tl-more" not in fragment.text  # the end

    # Without JavaScript: a link to the page at that point of the timeline.
    href = older.get("href")
    assert href.startswith(f"/accounts/{account}?cursor=")
    plain = browser.get(href)
    assert _subjects(plain.text)[0] == "Message 03"
    assert "Back to the newest" in plain.text
    redirected = browser.get(older.get("hx-get"))
    assert redirected.status_code == 303
    assert redirected.headers["location"] == href


def test_a_cursor_this_server_did_not_issue_is_refused(browser: TestClient, web_org: Org) -> None:
    account = _many_emails(web_org, 1)
    log_in(browser)
    page = browser.get(f"/accounts/{account}", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")


def test_an_empty_timeline_says_so(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        quiet = records.create_record(session, admin, Account, {"name": "Quiet"})
    log_in(browser)
    page = browser.get(f"/accounts/{quiet.id}")
    assert "Nothing on the timeline yet" in page.text
    assert _timeline(page.text) == []


def test_record_pages_need_a_login(browser: TestClient, web_org: Org) -> None:
    contoso = _contoso(web_org)
    assert_needs_login(browser, f"/contacts/{contoso.nancy}")
