"""An API client for the search, personal-options and email-action tests."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store


def crm_client(store: Store, box: SecretBox | None = None) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=store.blobs.root.parent), store, box)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
