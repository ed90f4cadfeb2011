"""The application factory: the API, the web app and, under ``crmsync serve``, the
embedded sync engine, on one FastAPI application.

``create_app(settings, store)`` wires them, so tests build apps on throwaway databases
freely; ``crmsync serve`` adds the embedded sync engine (``run_sync=True``), which starts
and stops with the app. It sits above api/, web/ and runtime/ so none of them imports
another's wiring: the API is installed first (``api.app.install_api``), the web app
(pages, /docs and /redoc served offline from the package, /static) last, because its
headers middleware must be outermost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crmsync.api.app import api_app, install_api
from crmsync.config import Settings
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.runtime.embedded import EmbeddedRuntime
from crmsync.web.app import install_web


def create_app(
    settings: Settings,
    store: Store,
    secret_box: SecretBox | None = None,
    *,
    run_sync: bool = False,
) -> FastAPI:
    """The API and web app; with ``run_sync`` the embedded sync engine runs for the app's
    lifetime."""
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

    app = api_app(lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.secret_box = box
    app.state.metrics = metrics
    install_api(app, settings)
    # Last: it wraps the error handlers above, and its headers middleware is outermost.
    install_web(app, settings)
    return app
