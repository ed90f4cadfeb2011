"""A web client per test on a SQLite store: pages behave the same on every backend
(their reads go through crm/, whose tests run on both)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from tests.conftest import Org, _empty, make_org, sqlite_store

OWN = "http://testserver"


@pytest.fixture(scope="session")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("web-store")
    store = sqlite_store(root)
    yield store
    store.dispose()


@pytest.fixture
def web_org(web_store: Store) -> Iterator[Org]:
    yield make_org(web_store)
    _empty(web_store)


@pytest.fixture
def web_app(web_store: Store, web_org: Org, tmp_path: Path) -> FastAPI:
    settings = Settings(data_dir=tmp_path, secret_key=SecretBox.generate_key())
    return create_app(settings, web_store)


@pytest.fixture
def browser(web_app: FastAPI) -> Iterator[TestClient]:
    """A client that acts like a browser on our pages: same-origin, redirects not followed."""
    with TestClient(
        web_app, raise_server_exceptions=False, follow_redirects=False, headers={"Origin": OWN}
    ) as client:
        yield client


def log_in(
    client: TestClient, username: str = "admin-acme", password: str = "admin-password"
) -> str:
    """Log in through the form; returns the CSRF token the next page carries."""
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.text
    return csrf_token(client.get("/").text)


def assert_needs_login(client: TestClient, path: str, next_param: str | None = None) -> None:
    """Without a login, ``path`` sends to the login form, which will come back to it;
    ``next_param`` is ``path`` as the form's query carries it, when it needs encoding."""
    page = client.get(path)
    assert page.status_code == 303
    assert page.headers["location"] == f"/login?next={next_param or path}"


def csrf_token(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', page)
    assert found, page
    return found.group(1)
