"""``install_web``: the web app added to the API's application, in one call.

``crmsync.app.create_app`` calls it last, once the API's routes, error handlers and
middleware are in place, because it builds on them:

- errors.py wraps the API's exception handlers, so pages get HTML error pages while
  ``/api/…`` keeps problem+json;
- every page router is included like the API's routers, so each page gets the app-wide
  refusal of cross-site unsafe requests (``api.csrf.check_request``) and the body limit;
- ``SecurityHeadersMiddleware`` is added last, so it is the outermost middleware and its
  headers reach every response, the body limit's 413 included;
- ``/static`` serves ``static/``: with the ``?v=<content hash>`` that ``static_url``
  writes, a file is cached for a year (its URL changes with its content); without, a
  browser revalidates it every time.

To add a group of pages: a module in ``pages/`` with ``router = APIRouter(
include_in_schema=False)``, included in ``PAGE_ROUTERS`` below.

Must never mount a sub-application that takes unsafe requests (it would skip the CSRF
dependency) and never put a page into the OpenAPI document.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from crmsync.config import Settings
from crmsync.web import addin, docs, errors
from crmsync.web.pages import (
    admin_alerts,
    admin_dashboard,
    admin_mailboxes,
    admin_mailboxes_profiles,
    admin_settings,
    auth,
    emails,
    home,
    options,
    panel,
    records,
    tokens,
)
from crmsync.web.security import SecurityHeadersMiddleware
from crmsync.web.templating import STATIC_DIR, STATIC_PREFIX, content_hash

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    docs.router,
    addin.router,
    auth.router,
    home.router,
    records.router,
    emails.router,
    options.router,
    tokens.router,
    panel.router,
    admin_settings.router,
    admin_mailboxes.router,
    admin_mailboxes_profiles.router,
    admin_alerts.router,
    admin_dashboard.router,
)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class StaticAssets(StaticFiles):
    """Static files with cache headers: immutable when the URL names the content hash."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = _versioned(full_path, scope)
        response.headers["Cache-Control"] = IMMUTABLE if versioned else REVALIDATE
        return response


def _versioned(full_path: str | os.PathLike[str], scope: Scope) -> bool:
    asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v")
    if not asked:
        return False
    try:
        relative = os.path.relpath(full_path, STATIC_DIR)
        return bool(asked[0] == content_hash(relative))
    except ValueError:
        return False


def install_web(app: FastAPI, settings: Settings) -> None:
    """Add the pages, /docs, /redoc, /static, HTML error pages and security headers.

    ``settings`` are the application's; nothing is configured from them at start yet
    (pages read them per request through ``api.deps.SettingsDep``).
    """
    errors.install(app)
    app.mount(STATIC_PREFIX, StaticAssets(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.add_middleware(SecurityHeadersMiddleware)
