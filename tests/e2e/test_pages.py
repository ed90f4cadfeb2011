"""Every page the app serves: the CSP header, no inline script, nothing from another host.

The pages are found by crawling, as an administrator, every link of this site from the
home page, from a search that finds a customer of this file's own (so record pages, their
timelines and the email page are reached), and from the pages anyone may see: a page
added later is checked as soon as a link leads to it. Downloads are not pages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from lxml import html as lxml_html
from playwright.sync_api import APIResponse, Page, expect

from crmsync.core.types import Direction, EmailStatus, Participation, RecordType
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Account, Contact, Email
from tests.e2e.conftest import LiveServer, log_in

PUBLIC_PAGES = ["/login", "/docs", "/redoc", "/panel", "/no-such-page"]
CUSTOMER = "Crawlworth Shipping"
MAX_PAGES = 60
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "poster", "data", "srcset")
SAFE_SCHEMES = ("mailto", "tel")


def _own(live_server: LiveServer, url: str) -> bool:
    parts = urlsplit(url)
    return parts.netloc == live_server.netloc and parts.scheme in ("http", "https")


def _is_html(response: APIResponse) -> bool:
    return response.headers.get("content-type", "").startswith("text/html")


def page_faults(live_server: LiveServer, url: str, response: APIResponse) -> list[str]:
    """What is wrong with one served page: headers, inline code, references elsewhere."""
    faults = []
    policy = response.headers.get("content-security-policy", "")
    if "script-src 'self'" not in policy or "default-src 'self'" not in policy:
        faults.append(f"{url}: Content-Security-Policy is {policy!r}")
    if response.headers.get("x-content-type-options") != "nosniff":
        faults.append(f"{url}: no X-Content-Type-Options: nosniff")
    document = lxml_html.document_fromstring(response.text())
    for script in document.iter("script"):
        if not script.get("src"):
            faults.append(f"{url}: inline <script>")
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                faults.append(f"{url}: <{element.tag} {name}=...> (inline event handler)")
            if name.lower() == "style":
                faults.append(f"{url}: <{element.tag} style=...> (inline style)")
            if name.lower() in URL_ATTRIBUTES:
                for reference in value.replace(",", " ").split():
                    target = urljoin(url, reference)
                    scheme = urlsplit(target).scheme
                    if reference.startswith("#") or scheme in SAFE_SCHEMES:
                        continue
                    if name.lower() == "srcset" and not reference.startswith(("/", "http")):
                        continue  # a width or density descriptor
                    if not _own(live_server, target):
                        faults.append(f"{url}: <{element.tag} {name}={reference!r}> elsewhere")
    if document.find(".//style") is not None:
        faults.append(f"{url}: <style> element")
    return faults


def _links(url: str, document: lxml_html.HtmlElement) -> list[str]:
    return [urljoin(url, href) for href in document.xpath("//a/@href")]


def crawl(
    visit: Callable[[str], list[str] | None],
    live_server: LiveServer,
    start: list[str],
    seen: set[str],
) -> list[str]:
    """Every page of this site reachable by links from ``start`` and not in ``seen``.

    ``visit(url)`` loads one page and answers its links, or None when it was redirected
    (to the login page: it may be another page once logged in); ``seen`` grows.
    """
    found = []
    queue = deque(urljoin(live_server.url, path) for path in start)
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft().split("#")[0]
        path = urlsplit(url).path
        if url in seen or path.startswith("/api/") or "/attachments/" in path:
            continue
        seen.add(url)
        links = visit(url)
        if links is None:
            seen.discard(url)
            continue
        found.append(url)
        queue.extend(link for link in links if _own(live_server, link))
    return found


@pytest.fixture(scope="module")
def private_start(live_server: LiveServer) -> list[str]:
    """Where the logged-in crawl starts: home, and a search that leads to an account, its
    contact, and a tracked email (HTML body, an unresolved party) on their timelines."""
    org = live_server.org
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(session, admin, Account, {"name": CUSTOMER})
        contact = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Cora", "last_name": "Crawl", "email1": "cora@crawlworth.example"},
        )
        contact.account_id = account.id
        activities.create_activity(
            session,
            admin,
            Email,
            {
                "subject": "Crawl me",
                "description": '<p>Hello <a href="https://crawlworth.example/">link</a></p>',
                "direction": Direction.INCOMING,
                "status": EmailStatus.RECEIVED,
                "regarding_type": RecordType.ACCOUNT,
                "regarding_id": account.id,
            },
            [
                PartySpec(Participation.FROM, RecordType.CONTACT, contact.id),
                PartySpec(Participation.CC, address="someone@elsewhere.example"),
            ],
        )
    return ["/", "/?" + urlencode({"q": CUSTOMER}), "/?" + urlencode({"q": "Cora"})]


def test_no_page_loads_anything_from_another_host(
    page: Page, live_server: LiveServer, private_start: list[str]
) -> None:
    """In the browser, so that what scripts load counts too. (Swagger UI and ReDoc are
    checked fully rendered by test_docs.py, under the same watch.)"""

    def visit(url: str) -> list[str] | None:
        page.goto(url)
        if page.url != url:
            return None
        hrefs = page.locator("a[href]").evaluate_all(
            "links => links.map(link => link.getAttribute('href'))"
        )
        return [urljoin(url, href) for href in hrefs]

    seen: set[str] = set()
    public = crawl(visit, live_server, PUBLIC_PAGES, seen)
    log_in(page, live_server.admin)
    private = crawl(visit, live_server, private_start, seen)
    # The watch fixture fails this test for any request to another host while crawling.
    assert f"{live_server.url}/" in private
    assert _reached(private) >= {"accounts", "contacts", "emails", "options"}
    assert len(public) + len(private) >= 5


def _reached(urls: list[str]) -> set[str]:
    """The kinds of page among ``urls``: ``/contacts/<id>`` → ``contacts``."""
    return {urlsplit(url).path.split("/")[1] for url in urls}


def test_every_page_has_the_csp_and_no_inline_code(
    page: Page, live_server: LiveServer, private_start: list[str]
) -> None:
    faults: list[str] = []
    checked: list[str] = []

    def visit(url: str) -> list[str] | None:
        response = page.request.get(url)
        if response.url != url:
            return None
        if not _is_html(response):
            return []
        checked.append(url)
        faults.extend(page_faults(live_server, url, response))
        return _links(url, lxml_html.document_fromstring(response.text()))

    seen: set[str] = set()
    crawl(visit, live_server, PUBLIC_PAGES, seen)
    log_in(page, live_server.admin)
    crawl(visit, live_server, private_start, seen)
    assert f"{live_server.url}/" in checked
    assert _reached(checked) >= {"accounts", "contacts", "emails", "options"}
    assert len(checked) >= 5
    assert not faults, "\n".join(faults)


def test_logout_from_another_site_is_refused(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server.salesperson)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    forged = page.request.post(
        "/logout",
        form={"csrf_token": token},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert _is_html(forged)
    assert "did not come from a page of this site" in forged.text()
    without_token = page.request.post(
        "/logout", headers={"Origin": live_server.url}, max_redirects=0
    )
    assert without_token.status == 403
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")  # still logged in


def test_a_missing_page_is_a_friendly_page(page: Page, live_server: LiveServer) -> None:
    log_in(page, live_server.salesperson)
    page.goto("/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(page.get_by_role("link", name="Go to the home page")).to_be_visible()
    expect(page.locator(".topbar .who")).to_have_text(live_server.salesperson.full_name)
