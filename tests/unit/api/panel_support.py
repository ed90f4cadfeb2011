"""The API with the side panel's routes, for the panel's tests.

Until api/app.py includes the panel router, these tests include it themselves; once it
does, ``with_panel`` leaves the app as it is.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from crmsync.api.app import API_PREFIX, create_app
from crmsync.api.routes import panel
from crmsync.config import Settings
from crmsync.crm.store import Store

PANEL = f"{API_PREFIX}/panel"


def with_panel(app: FastAPI) -> FastAPI:
    if not any(isinstance(r, APIRoute) and r.path.startswith(PANEL) for r in app.routes):
        app.include_router(panel.router, prefix=API_PREFIX)
        app.openapi_schema = None  # rebuilt with the panel's operations on next use
    return app


def panel_client(store: Store) -> Iterator[TestClient]:
    app = with_panel(create_app(Settings(data_dir=store.blobs.root.parent), store))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
