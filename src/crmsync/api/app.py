"""The FastAPI application factory.

``create_app(settings, store)`` wires routes, error handlers and state, so tests build
apps on throwaway databases freely; ``crmsync serve`` adds the embedded sync engine
(``run_sync=True``), which starts and stops with the app. The web app (pages, /docs
and /redoc served offline from the package, /static) is added last by
``web.app.install_web``; the OpenAPI document is at /api/v1/openapi.json.

Every request passes, in this order: the body size limit (limits.py, before any byte of
the body is read); the refusal of unsafe requests from foreign pages (csrf.py, the first
dependency of every route); when the session cookie authenticates it, the CSRF token
check (deps.py finds the caller through csrf.py); the refusal of unknown query parameters
(query.py); then the route, whose transaction
commits before its answer is sent (deps.py). Routers included here get all of it; never
mount a sub-application that takes unsafe requests, it would get only the body limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from crmsync import __version__
from crmsync.api import csrf, limits, problems, query
from crmsync.api.openapi import install_openapi
from crmsync.api.routes import (
    auth,
    directory,
    email_actions,
    mailboxes,
    organisation,
    outgoing,
    panel,
    preferences,
    records,
    search,
    tracking,
)
from crmsync.config import Settings
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.runtime.embedded import EmbeddedRuntime
from crmsync.web.app import install_web

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    store: Store,
    secret_box: SecretBox | None = None,
    *,
    run_sync: bool = False,
) -> FastAPI:
    """The API; with ``run_sync`` the embedded sync engine runs for the app's lifetime."""
    box = secret_box or SecretBox.from_settings(settings)
    # The app's own Prometheus registry, counted into by its embedded engine (/metrics).
    metrics = SyncMetrics.for_store(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not run_sync:
            yield
            return
        stop = asyncio.Event()
        runtime = EmbeddedRuntime(store, box, metrics=metrics)
        engine = asyncio.create_task(runtime.run(stop))
        try:
            yield
        finally:
            stop.set()
            await engine

    app = FastAPI(
        lifespan=lifespan,
        title="crmsync",
        version=__version__,
        description="Server-side synchronization between mail systems and the CRM.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # web/docs.py serves both from the package: FastAPI's load them from a CDN.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(csrf.check_request)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.secret_box = box
    app.state.metrics = metrics
    problems.install(app)
    csrf.install(app, settings)
    for router in (
        auth.router,
        directory.router,
        mailboxes.router,
        outgoing.router,
        tracking.router,
        email_actions.router,
        search.router,
        preferences.router,
        organisation.router,
        panel.router,
        *records.routers(),
    ):
        app.include_router(
            router, prefix=API_PREFIX, dependencies=[Depends(query.refuse_unknown_parameters)]
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    install_openapi(app)
    limits.install(
        app, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    # Last: it wraps the error handlers above, and its headers middleware is outermost.
    install_web(app, settings)
    return app
