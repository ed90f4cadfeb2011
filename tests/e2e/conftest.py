"""Browser tests: the real app served over HTTP, driven by Debian's Chromium (Playwright).

Fixtures:

- ``live_server`` (session): a migrated SQLite store in a temporary directory with the
  organisation Acme — ``live_server.admin`` (System Administrator) and
  ``live_server.salesperson`` (Salesperson) are ``Person``s with a username, password
  and full name — and ``create_app(...)`` served by uvicorn on a free 127.0.0.1 port, in
  a thread. ``live_server.url`` is its base URL; ``live_server.store`` and
  ``live_server.org`` let a test add data (``live_server.add_person(...)``). Tests share
  it: give what you create names of its own.
- ``browser`` (session): one Chromium for the whole run, launched by path; skipped with
  the reason when ``/usr/bin/chromium`` is missing, unless ``CI`` is set (then it fails:
  scripts/bootstrap installs it).
- ``page``: a fresh browser context (no cookies) and page per test, its ``base_url`` the
  live server's, so ``page.goto("/login")`` works. ``log_in(page, person)`` logs in
  through the form.
- ``watch``: what the browser saw go wrong on that page — a request to any host but the
  instance's (aborted), a console error, an uncaught exception, a CSP violation. Any of
  them fails the test after it ran; a test that provokes one on purpose says so with
  ``watch.expect_console(regex)`` or takes them with ``watch.take()``.

When a test fails, a screenshot and the page's HTML are saved; the failure report names
the directory (``<tmp_path>/test-results``, or ``$CRMSYNC_E2E_RESULTS/<test>`` if set).

Every test here is marked ``e2e`` (``pytest -m "not e2e"`` leaves them out).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    sync_playwright,
)
from playwright.sync_api import Request as PlaywrightRequest
from playwright.sync_api import Response as PlaywrightResponse

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.auth import hash_password
from crmsync.crm.models.org import User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.setup import SALESPERSON
from crmsync.crm.store import Store
from tests.conftest import Org, make_org, sqlite_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
E2E_DIR = Path(__file__).parent
TIMEOUT_MS = 10_000
_CLIENT_ERROR = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")

# Reports a CSP violation to the test, from every page and frame, before any page script.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__crmsyncReport(
    `CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` on ${event.documentURI} (${event.sourceFile || ""}:${event.lineNumber || 0})`
  );
});
"""


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    full_name: str


@dataclass
class LiveServer:
    url: str
    store: Store
    org: Org
    admin: Person
    salesperson: Person

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    def add_person(self, username: str, *, role: str | None = SALESPERSON) -> Person:
        """A user of Acme who can log in; password ``<username>-password``."""
        return add_person(self.org, username, role=role)


def add_person(org: Org, username: str, *, role: str | None = SALESPERSON) -> Person:
    """``alice-jones`` → Alice Jones, password ``alice-jones-password``."""
    person = Person(username, f"{username}-password", username.replace("-", " ").title())
    with org.store.transaction() as session:
        user_id: uuid.UUID = org.add_user(session, username, role=role)
        user = session.get(User, user_id)
        assert user is not None
        user.full_name = person.full_name
        user.password_hash = hash_password(person.password)
    return person


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("e2e-store")
    store = sqlite_store(root)
    org = make_org(store)
    settings = Settings(data_dir=root, secret_key=SecretBox.generate_key())
    app = create_app(settings, store)
    sock = _listening_socket()
    port = int(sock.getsockname()[1])
    # The socket is bound before the thread starts, so the port cannot be taken meanwhile.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield LiveServer(
            url=f"http://127.0.0.1:{port}",
            store=store,
            org=org,
            admin=Person("admin-acme", "admin-password", "Administrator"),
            salesperson=add_person(org, "alice-jones"),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.dispose()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Watch:
    """What went wrong in the browser during one test; see the module docstring."""

    own_netloc: str
    results_dir: Path
    problems: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)
    page: Page | None = None
    documents: set[str] = field(default_factory=set)  # URLs the page navigated to

    def is_foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return False
        return parts.netloc != self.own_netloc or parts.scheme not in ("http", "https")

    def expect_console(self, pattern: str) -> None:
        """A console error matching ``pattern`` is what this test provokes: not a problem."""
        self.expected.append(re.compile(pattern))

    def take(self) -> list[str]:
        """The problems seen so far, which then no longer fail the test."""
        taken, self.problems = self.problems, []
        return taken

    def report(self, problem: str) -> None:
        if not any(pattern.search(problem) for pattern in self.expected):
            self.problems.append(problem)

    def on_request(self, request: PlaywrightRequest) -> None:
        if request.is_navigation_request():
            self.documents.add(request.url)

    def on_response(self, response: PlaywrightResponse) -> None:
        if response.status >= 500:
            self.report(f"server error: {response.status} for {response.url}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if where in self.documents and _CLIENT_ERROR.match(message.text):
            return  # a page answered with its own 4xx (a wrong password's 401): the test's say
        self.report(f"console error: {message.text} ({where})")

    def on_foreign(self, route: Route) -> None:
        self.problems.append(f"request to another host: {route.request.url}")
        route.abort("blockedbyclient")

    def save(self, directory: Path) -> list[Path]:
        """A screenshot and the HTML of the page, if there is one still open."""
        if self.page is None or self.page.is_closed():
            return []
        directory.mkdir(parents=True, exist_ok=True)
        saved = []
        try:
            shot = directory / "screenshot.png"
            self.page.screenshot(path=str(shot), full_page=True)
            saved.append(shot)
            html = directory / "page.html"
            html.write_text(self.page.content(), encoding="utf-8")
            saved.append(html)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            saved.append(directory / f"(could not save: {exc})")
        return saved


@pytest.fixture
def watch(live_server: LiveServer, request: pytest.FixtureRequest, tmp_path: Path) -> Watch:
    results = os.environ.get("CRMSYNC_E2E_RESULTS")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    directory = Path(results) / name if results else tmp_path / "test-results"
    found = Watch(live_server.netloc, directory)
    request.node.browser_watch = found
    return found


@pytest.fixture
def context(browser: Browser, live_server: LiveServer, watch: Watch) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(watch.is_foreign, watch.on_foreign)
    context.expose_binding("__crmsyncReport", lambda _source, text: watch.report(str(text)))
    context.add_init_script(_REPORT_CSP)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, watch: Watch) -> Page:
    page = context.new_page()
    page.on("request", watch.on_request)
    page.on("response", watch.on_response)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.report(f"uncaught exception: {error}"))
    watch.page = page
    return page


def log_in(page: Page, person: Person, next_path: str = "/") -> None:
    """Log in through the login form and wait for the page it leads to."""
    page.goto(f"/login?next={next_path}" if next_path != "/" else "/login")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: urlsplit(url).path != "/login")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """After a test ran: its browser problems fail it; a failure saves the page."""
    report = yield
    watch: Watch | None = getattr(item, "browser_watch", None)
    if watch is None or report.when != "call":
        return report
    problems = watch.take()
    if problems and report.passed:
        report.outcome = "failed"
        report.longrepr = "The browser saw problems:\n  " + "\n  ".join(problems)
    elif problems:
        report.sections.append(("browser problems", "\n".join(problems)))
    if report.failed:
        saved = watch.save(watch.results_dir)
        listing = "\n".join(str(path) for path in saved) or "(no page was open)"
        report.sections.append(("browser screenshot and HTML", listing))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
