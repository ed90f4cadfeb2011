"""The FastAPI application factory.

``create_app(settings, store)`` wires routes, error handlers and state; it does no I/O
itself, so tests build apps on throwaway databases freely. OpenAPI is served at /docs.
"""

from __future__ import annotations

from fastapi import FastAPI

from crmsync import __version__
from crmsync.api import problems
from crmsync.api.routes import auth, directory, mailboxes, records
from crmsync.config import Settings
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store

API_PREFIX = "/api/v1"


def create_app(settings: Settings, store: Store, secret_box: SecretBox | None = None) -> FastAPI:
    app = FastAPI(
        title="crmsync",
        version=__version__,
        description="Server-side synchronization between mail systems and the CRM.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.secret_box = secret_box or SecretBox.from_settings(settings)
    problems.install(app)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(directory.router, prefix=API_PREFIX)
    app.include_router(mailboxes.router, prefix=API_PREFIX)
    for router in records.routers():
        app.include_router(router, prefix=API_PREFIX)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
