"""Cross-site request forgery, as an attacker's page would try it against a logged-in user.

The victim logged in from the web UI: the TestClient's cookie jar holds the session
cookie, and a request from another site carries it too. Such requests must be refused
and change nothing; our own pages (same origin, with the token) and API clients (Bearer)
go through.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.store import Store
from tests.conftest import Org

API = "/api/v1"
OWN = "http://testserver"
EVIL = "http://evil.example"


def _browser_login(client: TestClient, origin: str | None = OWN) -> str:
    """Log in as the web UI does; the cookie stays in the jar. Returns the CSRF token."""
    headers = {"Origin": origin} if origin else {}
    response = client.post(
        f"{API}/auth/login",
        json={"username": "admin-acme", "password": "admin-password"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert client.cookies.get("crmsync_session") == response.json()["token"]
    return str(response.json().get("csrf_token"))


@pytest.fixture
def targets(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    """The victim's mailbox (pending approval) and a draft email with a recipient."""
    mailboxes = client.get(f"{API}/mailboxes", headers=admin).json()["items"]
    email = client.post(
        f"{API}/emails",
        json={
            "subject": "Quote",
            "body_text": "Hello",
            "parties": [{"participation": "to", "address": "bob@fabrikam.test"}],
        },
        headers=admin,
    )
    assert email.status_code == 201, email.text
    return {"mailbox": mailboxes[0]["id"], "email": email.json()["id"]}


def _attacks(client: TestClient, targets: dict[str, str], headers: dict[str, str]) -> list[int]:
    """What forged forms (or fetches) would send; the status of each."""
    form = {"reason": "spam"}
    # A form without fields posts an empty body, which a route with an optional body takes.
    empty_form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    return [
        client.post(
            f"{API}/mailboxes/{targets['mailbox']}/reject", data=form, headers=headers
        ).status_code,
        client.request(
            "DELETE", f"{API}/emails/{targets['email']}", data=form, headers=headers
        ).status_code,
        client.post(
            f"{API}/emails/{targets['email']}/send", content=b"", headers=empty_form
        ).status_code,
    ]


def _nothing_changed(client: TestClient, admin: dict[str, str], targets: dict[str, str]) -> None:
    mailbox = client.get(f"{API}/mailboxes/{targets['mailbox']}", headers=admin).json()
    assert mailbox["approval"] == "pending"
    email = client.get(f"{API}/emails/{targets['email']}", headers=admin)
    assert email.status_code == 200
    assert email.json()["status"] == "draft"


def _refusal(client: TestClient, targets: dict[str, str], headers: dict[str, str]) -> str:
    response = client.post(
        f"{API}/mailboxes/{targets['mailbox']}/reject", data={"a": "b"}, headers=headers
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "CSRF_FAILED"
    return str(response.json()["reason"])


def test_a_foreign_page_cannot_act_with_the_session_cookie(
    client: TestClient, admin: dict[str, str], targets: dict[str, str]
) -> None:
    _browser_login(client)
    assert _attacks(client, targets, {"Origin": EVIL}) == [403, 403, 403]
    assert _refusal(client, targets, {"Origin": EVIL}) == "ORIGIN_FOREIGN"
    # Browsers that leave out Origin still send the page in Referer.
    assert _attacks(client, targets, {"Referer": f"{EVIL}/page.html"}) == [403, 403, 403]
    assert _refusal(client, targets, {"Origin": "null"}) == "ORIGIN_FOREIGN"
    # A look-alike host is another site.
    assert _refusal(client, targets, {"Origin": "http://testserver.evil.example"}) == (
        "ORIGIN_FOREIGN"
    )
    _nothing_changed(client, admin, targets)


def test_a_cookie_request_without_origin_or_referer_is_refused(
    client: TestClient, admin: dict[str, str], targets: dict[str, str]
) -> None:
    _browser_login(client)
    assert _attacks(client, targets, {}) == [403, 403, 403]
    assert _refusal(client, targets, {}) == "ORIGIN_MISSING"
    # Routes that find the caller in a short transaction of their own check it too.
    tested = client.post(f"{API}/mailboxes/{targets['mailbox']}/test-enable")
    assert (tested.status_code, tested.json()["reason"]) == (403, "ORIGIN_MISSING")
    _nothing_changed(client, admin, targets)


def test_the_same_origin_needs_the_sessions_token(
    client: TestClient, admin: dict[str, str], targets: dict[str, str]
) -> None:
    # A page on our origin that is not ours (an uploaded HTML file, say) knows no token.
    _browser_login(client)
    assert _attacks(client, targets, {"Origin": OWN}) == [403, 403, 403]
    assert _refusal(client, targets, {"Origin": OWN}) == "TOKEN_MISSING"
    # Nor does another session's token do: it is bound to the session it was made for.
    other = TestClient(client.app)
    stolen = _browser_login(other)
    assert _attacks(client, targets, {"Origin": OWN, "X-CSRF-Token": stolen}) == [403] * 3
    assert _refusal(client, targets, {"Origin": OWN, "X-CSRF-Token": stolen}) == "TOKEN_INVALID"
    forged = {"Origin": OWN, "X-CSRF-Token": "x" * 43}
    assert _refusal(client, targets, forged) == "TOKEN_INVALID"
    _nothing_changed(client, admin, targets)


def test_our_own_pages_act_with_the_token_in_a_header_or_a_form_field(
    client: TestClient, admin: dict[str, str], targets: dict[str, str]
) -> None:
    token = _browser_login(client)
    rejected = client.post(
        f"{API}/mailboxes/{targets['mailbox']}/reject",
        data={"csrf_token": token},
        headers={"Origin": OWN},
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"] == "rejected"
    # Without Origin, a same-origin Referer will do.
    sent = client.post(
        f"{API}/emails/{targets['email']}/send",
        headers={"Referer": f"{OWN}/emails/{targets['email']}", "X-CSRF-Token": token},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "pending_send"
    draft = client.post(
        f"{API}/emails", json={"subject": "Another"}, headers={"Origin": OWN, "X-CSRF-Token": token}
    )
    assert draft.status_code == 201, draft.text
    deleted = client.delete(
        f"{API}/emails/{draft.json()['id']}", headers={"Origin": OWN, "X-CSRF-Token": token}
    )
    assert deleted.status_code == 204, deleted.text


def test_bearer_requests_need_neither_origin_nor_token(
    client: TestClient, admin: dict[str, str], targets: dict[str, str]
) -> None:
    # Even with a session cookie in the jar: the Bearer token is what authenticates.
    _browser_login(client)
    assert _attacks(client, targets, admin) == [200, 204, 404]
    assert client.get(f"{API}/mailboxes/{targets['mailbox']}", headers=admin).json()[
        "approval"
    ] == ("rejected")


def test_login_from_a_foreign_page_is_refused(client: TestClient) -> None:
    refused = client.post(
        f"{API}/auth/login",
        json={"username": "admin-acme", "password": "admin-password"},
        headers={"Origin": EVIL},
    )
    assert refused.status_code == 403
    assert refused.json()["reason"] == "ORIGIN_FOREIGN"
    assert "crmsync_session" not in client.cookies
    # Programs log in without an Origin; our login page sends its own.
    _browser_login(client, origin=None)
    client.cookies.clear()
    _browser_login(client, origin=OWN)


def test_a_program_that_keeps_cookies_logs_in_again(client: TestClient) -> None:
    # Login does not use the cookie, so it needs no token: httpx/requests sessions send
    # the cookie of the previous login along.
    _browser_login(client, origin=None)
    _browser_login(client, origin=None)


def test_logout_by_cookie_needs_the_token_and_clears_both_cookies(
    client: TestClient, targets: dict[str, str]
) -> None:
    token = _browser_login(client)
    assert client.post(f"{API}/auth/logout", headers={"Origin": EVIL}).status_code == 403
    assert client.get(f"{API}/users/me").status_code == 200  # still logged in
    out = client.post(f"{API}/auth/logout", headers={"Origin": OWN, "X-CSRF-Token": token})
    assert out.status_code == 204
    cleared = out.headers.get_list("set-cookie")
    assert any(c.startswith('crmsync_session=""') for c in cleared)
    assert any(c.startswith('crmsync_csrf=""') for c in cleared)


def test_login_gives_the_token_in_its_answer_and_a_cookie_our_scripts_read(
    client: TestClient,
) -> None:
    response = client.post(
        f"{API}/auth/login", json={"username": "admin-acme", "password": "admin-password"}
    )
    token = response.json()["csrf_token"]
    assert client.cookies.get("crmsync_csrf") == token
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies["crmsync_session"]
    assert "httponly" not in cookies["crmsync_csrf"]
    assert "samesite=strict" in cookies["crmsync_csrf"]


@pytest.fixture
def two_workers(store: Store, org: Org) -> Iterator[tuple[TestClient, TestClient]]:
    """Two processes of one deployment: same settings, nothing else shared."""
    settings = Settings(data_dir=store.blobs.root.parent, secret_key=_key())
    with (
        TestClient(create_app(settings, store), raise_server_exceptions=False) as first,
        TestClient(create_app(settings, store), raise_server_exceptions=False) as second,
    ):
        yield first, second


def _key() -> str:
    from crmsync.crm.secrets import SecretBox

    return SecretBox.generate_key()


def test_a_token_from_one_worker_is_good_on_another(
    two_workers: tuple[TestClient, TestClient],
) -> None:
    first, second = two_workers
    token = _browser_login(first)
    second.cookies.update(first.cookies)
    made = second.post(
        f"{API}/accounts", json={"name": "Fabrikam"}, headers={"Origin": OWN, "X-CSRF-Token": token}
    )
    assert made.status_code == 201, made.text


def test_allowed_origins_name_the_public_address_behind_a_proxy(store: Store, org: Org) -> None:
    public = "https://crm.example.com"
    settings = Settings(data_dir=store.blobs.root.parent, allowed_origins=[public])
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as client:
        token = _browser_login(client, origin=public)
        made = client.post(
            f"{API}/accounts",
            json={"name": f"Proxied {uuid.uuid4().hex[:6]}"},
            headers={"Origin": public, "X-CSRF-Token": token},
        )
        assert made.status_code == 201, made.text
        foreign = client.post(
            f"{API}/accounts",
            json={"name": "Evil"},
            headers={"Origin": "https://crm.example.com.evil.example", "X-CSRF-Token": token},
        )
        assert foreign.status_code == 403
