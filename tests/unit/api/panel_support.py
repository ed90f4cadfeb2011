"""An API client for the side panel's tests, and the panel's Bearer header."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from crmsync.api.app import API_PREFIX, create_app
from crmsync.config import Settings
from crmsync.crm.store import Store

PANEL = f"{API_PREFIX}/panel"


def panel_client(store: Store) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=store.blobs.root.parent), store)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
