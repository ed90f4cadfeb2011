"""The README's first command, as a new user meets it: ``scripts/demo`` ends with a URL,
the URL shows the login page, and the demo salesperson finds the customer email the
sync engine tracked on the contact's and on the account's timeline.

Runs the real script (its servers, its seed, ``crmsync serve`` with the embedded sync
engine) in a data directory of its own and on a free port, then stops it as a person
would, with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 240
# The engine syncs alice's INBOX when it starts, then on IDLE; allow for a slow machine.
TRACKED_WITHIN_MS = 90_000
RUNNING = re.compile(r"crmsync is running:\s+(http://\S+?)/?\s*$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Demo:
    def __init__(self, data_dir: Path) -> None:
        env = {
            **os.environ,
            "CRMSYNC_DATA_DIR": str(data_dir),
            "CRMSYNC_PORT": str(_free_port()),
            "CRMSYNC_SKIP_BOOTSTRAP": "1",
        }
        env.pop("CRMSYNC_DATABASE_URL", None)
        self.output: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [str(REPO / "scripts" / "demo")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, stopped as one below
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = RUNNING.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # it ended: wait() below says how

    def wait_for_url(self) -> str:
        self._ready.wait(STARTUP_SECONDS)
        if self.url is None:
            pytest.fail("scripts/demo printed no URL:\n" + "".join(self.output[-60:]))
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    # Directly under /tmp: Dovecot's mail processes (another uid) must reach the data
    # directory, and pytest's own temporary directories are private to root.
    data_dir = Path(tempfile.mkdtemp(prefix="crmsync-demo-"))
    data_dir.chmod(0o755)
    running = Demo(data_dir)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def demo_page(browser: Browser, demo: Demo) -> Iterator[Page]:
    context = browser.new_context(base_url=demo.wait_for_url())
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_the_demo_ends_with_the_url_of_its_login_page(demo: Demo, demo_page: Page) -> None:
    url = demo.wait_for_url()
    assert url.startswith("http://127.0.0.1:")
    demo_page.goto("/")
    expect(demo_page).to_have_url(re.compile(r"/login"))
    expect(demo_page.get_by_label("Username")).to_be_visible()


def _open_from_search(page: Page, query: str, name: str) -> None:
    page.goto("/")
    page.get_by_role("searchbox").fill(query)
    page.locator("#search-results").get_by_role("link", name=name).first.click()


def test_the_demo_salesperson_sees_tracked_mail_on_contact_and_account(demo_page: Page) -> None:
    page = demo_page
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-demo")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")

    # Tom Admin's "Login problem" arrives in alice's INBOX; the engine tracks it against
    # Tom (a contact of Contoso). Reload until it is there: the sync runs on its own.
    _open_from_search(page, "Tom", "Tom Admin")
    contact_url = page.url
    timeline = page.locator("#timeline")
    deadline_reloads = TRACKED_WITHIN_MS // 3_000
    for _ in range(deadline_reloads):
        if timeline.get_by_text("Login problem").count():
            break
        page.wait_for_timeout(3_000)
        page.goto(contact_url)
    expect(timeline.get_by_text("Login problem")).to_be_visible()

    _open_from_search(page, "Contoso", "Contoso")
    account_timeline = page.locator("#timeline")
    expect(account_timeline.get_by_text("Login problem")).to_be_visible()
    expect(account_timeline).to_contain_text("Tom Admin")  # "via Contact Tom Admin"
