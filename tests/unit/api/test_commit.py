"""A 2xx means committed: what it reports is there for the very next request, on any
connection; and a commit that fails is a 5xx, never a 2xx for data that is gone.

The probe looks at the database at the moment the application hands the response body to
the server — the earliest a client could read it — through a connection of its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.auth import digest_token
from crmsync.crm.models import Account
from crmsync.crm.models.org import ApiToken
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.conftest import login

API = "/api/v1"


class Probe:
    """Wraps the app; when a POST's 2xx body is sent, asks ``look(body)`` what a reader sees."""

    def __init__(self, app: ASGIApp, look: Callable[[dict[str, Any]], bool]) -> None:
        self.app = app
        self.look = look
        self.seen: list[bool] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        posted = scope["type"] == "http" and scope["method"] == "POST"

        async def probing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            if message["type"] == "http.response.body" and 200 <= status < 300 and posted:
                self.seen.append(self.look(json.loads(message["body"])))
            await send(message)

        await self.app(scope, receive, probing_send)


@pytest.fixture
def app(store: Store, org: Org) -> Any:
    return create_app(Settings(data_dir=store.blobs.root.parent), store)


def _account_exists(store: Store) -> Callable[[dict[str, Any]], bool]:
    def look(body: dict[str, Any]) -> bool:
        with store.transaction() as session:
            return session.get(Account, uuid.UUID(body["id"])) is not None

    return look


def _token_exists(store: Store) -> Callable[[dict[str, Any]], bool]:
    def look(body: dict[str, Any]) -> bool:
        digest = digest_token(body["token"])
        with store.transaction() as session:
            return session.scalar(select(ApiToken).where(ApiToken.token_hash == digest)) is not None

    return look


def test_a_created_record_is_committed_before_the_201_goes_out(app: Any, store: Store) -> None:
    probe = Probe(app, _account_exists(store))
    with TestClient(probe) as client:
        admin = login(client, "admin-acme", "admin-password")
        made = client.post(f"{API}/accounts", json={"name": "Fabrikam"}, headers=admin)
        assert made.status_code == 201, made.text
    assert probe.seen[-1] is True


def test_a_new_token_works_as_soon_as_it_is_answered(app: Any, store: Store) -> None:
    probe = Probe(app, _token_exists(store))
    with TestClient(probe) as client:
        # Login's own session token, and an API token created with it.
        session = login(client, "admin-acme", "admin-password")
        issued = client.post(f"{API}/tokens", json={"name": "script"}, headers=session)
        assert issued.status_code == 201, issued.text
        assert probe.seen == [True, True]
        bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert client.get(f"{API}/users/me", headers=bearer).status_code == 200


@pytest.fixture
def failing_commits(store: Store) -> Iterator[list[int]]:
    """While armed (a non-empty list), the next commit fails as a locked database does."""
    armed: list[int] = []

    def refuse(_session: Any) -> None:
        if armed:
            armed.pop()
            raise OperationalError("COMMIT", {}, Exception("database is locked"))

    event.listen(store.sessions, "before_commit", refuse)
    try:
        yield armed
    finally:
        event.remove(store.sessions, "before_commit", refuse)


def test_a_failed_commit_is_a_5xx_and_nothing_is_kept(
    app: Any, store: Store, failing_commits: list[int]
) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        admin = login(client, "admin-acme", "admin-password")
        failing_commits.append(1)
        made = client.post(f"{API}/accounts", json={"name": "Lost Ltd"}, headers=admin)
        assert made.status_code == 500
        assert made.headers["content-type"] == "application/problem+json"
        assert made.json()["code"] == "COMMIT_FAILED"
        assert "Lost Ltd" not in made.text  # no trace of the 201 that was prepared
        failing_commits.append(1)
        issued = client.post(f"{API}/tokens", json={"name": "lost"}, headers=admin)
        assert issued.status_code == 500
        assert "token" not in issued.json()
    with store.transaction() as session:
        assert session.scalars(select(Account).where(Account.name == "Lost Ltd")).all() == []
        assert session.scalars(select(ApiToken).where(ApiToken.name == "lost")).all() == []


def test_an_error_in_the_route_still_rolls_back_and_is_not_a_commit_failure(
    app: Any, store: Store
) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        admin = login(client, "admin-acme", "admin-password")
        missing = client.patch(f"{API}/accounts/{uuid.uuid4()}", json={"name": "X"}, headers=admin)
        assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
