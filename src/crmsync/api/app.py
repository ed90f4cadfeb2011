"""The API on a FastAPI application: its routes, error handlers, CSRF, limits, OpenAPI.

``api_app(lifespan)`` makes the application with the API's own options and
``install_api(app, settings)`` wires everything under /api/v1; ``crmsync.app.create_app``
calls both, then adds the web app, so api/ never imports web/ or the runtime. The OpenAPI
document is at /api/v1/openapi.json.

Every request passes, in this order: the body size limit (limits.py, before any byte of
the body is read); the refusal of unsafe requests from foreign pages (csrf.py, the first
dependency of every route); when the session cookie authenticates it, the CSRF token
check (deps.py finds the caller through csrf.py); the refusal of unknown query parameters
(query.py); then the route, whose transaction
commits before its answer is sent (deps.py). Routers included here get all of it; never
mount a sub-application that takes unsafe requests, it would get only the body limit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

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

API_PREFIX = "/api/v1"


def api_app(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """An application with the API's options: the CSRF check first on every route."""
    return FastAPI(
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


def install_api(app: FastAPI, settings: Settings) -> None:
    """The API's routes, error handlers, CSRF protection, OpenAPI and body limits."""
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
