"""Templates: one Jinja2 environment for every page, and ``render`` to answer with one.

Templates live in ``web/templates/`` and extend ``base.html``. Autoescape is on for
everything; what a template may use besides its context:

- ``request`` and ``viewer`` (the logged-in user, ``web.deps.Viewer``, or None), which
  ``render`` adds;
- ``csrf_token()``: the token of the request's session, for the ``csrf_token`` field of
  every form that POSTs (htmx requests get it as a header from static/js/app.js);
- ``static_url("css/app.css")`` → ``/static/css/app.css?v=3f2a…``: the file's content
  hash makes the URL change when the file does, so static files are cached for a year;
- ``value|safe_html``: any description or body shown as HTML, through
  ``tracking.display.safe_html`` — the one sanitizer; never ``|safe`` on stored text;
- ``when|datetime`` (``6 Dec 2026, 14:05``), ``when|date`` (``6 Dec 2026``), in UTC;
- ``flashes``: the messages ``flash()`` left for this page (web/flash.py);
- ``record_url(record_type, id)`` → ``/contacts/<id>`` and ``email_url(id)`` →
  ``/emails/<id>``: the one place page addresses are spelt, so every link agrees.

Must never mark anything safe (``Markup``, ``|safe``) that came from a user, a message
or the database without ``safe_html``; never render a session or API token.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from crmsync.api.csrf import csrf_token_for
from crmsync.core.types import RecordType
from crmsync.tracking.display import safe_html
from crmsync.web import flash

WEB_DIR = Path(__file__).parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static"


# The page of each customer record type; the same words as the API's paths.
RECORD_PAGES: dict[RecordType, str] = {
    RecordType.ACCOUNT: "accounts",
    RecordType.CONTACT: "contacts",
    RecordType.LEAD: "leads",
    RecordType.OPPORTUNITY: "opportunities",
    RecordType.CASE: "cases",
}


def record_url(record_type: RecordType | str, record_id: uuid.UUID | str) -> str:
    """The page of a customer record: ``/accounts/<id>``, ``/contacts/<id>`` …"""
    return f"/{RECORD_PAGES[RecordType(record_type)]}/{record_id}"


def email_url(email_id: uuid.UUID | str) -> str:
    """The page of a tracked email, also its permalink."""
    return f"/emails/{email_id}"


@functools.cache
def content_hash(path: str) -> str:
    """The first 12 hex digits of the SHA-256 of static file ``path``; files never change
    while the process runs (they ship in the package), so each is read once."""
    file = (STATIC_DIR / path).resolve()
    if not file.is_relative_to(STATIC_DIR.resolve()) or not file.is_file():
        raise ValueError(f"no static file {path!r}")
    return hashlib.sha256(file.read_bytes()).hexdigest()[:12]


def static_path(request: Request | None, path: str) -> str:
    """``/static/css/app.css?v=<hash>``, under the application's root path."""
    root = request.scope.get("root_path", "") if request is not None else ""
    return f"{root}{STATIC_PREFIX}/{path}?v={content_hash(path)}"


@jinja2.pass_context
def _static_url(context: jinja2.runtime.Context, path: str) -> str:
    return static_path(context.get("request"), path)


@jinja2.pass_context
def _csrf_token(context: jinja2.runtime.Context) -> str:
    request = context.get("request")
    return (csrf_token_for(request) or "") if request is not None else ""


def _safe_html(value: str | None) -> Markup:
    # The one place stored HTML becomes Markup: only what nh3 has cleaned.
    return Markup(safe_html(value or ""))  # noqa: S704 - safe_html sanitizes it


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def format_datetime(value: datetime | None) -> str:
    """``6 Dec 2026, 14:05`` (UTC); empty for None."""
    if value is None:
        return ""
    when = _utc(value)
    return f"{when.day} {when:%b %Y, %H:%M}"


def format_date(value: date | datetime | None) -> str:
    """``6 Dec 2026``; empty for None."""
    if value is None:
        return ""
    day = _utc(value).date() if isinstance(value, datetime) else value
    return f"{day.day} {day:%b %Y}"


def make_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        static_url=_static_url, csrf_token=_csrf_token, record_url=record_url, email_url=email_url
    )
    environment.filters.update(safe_html=_safe_html, datetime=format_datetime, date=format_date)
    return environment


templates = Jinja2Templates(env=make_environment())


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Answer with ``template`` rendered; adds ``viewer`` and this page's flashes."""
    viewer = getattr(request.state, "viewer", None)
    messages = flash.take(request)
    full = {"viewer": viewer, "flashes": messages, **(context or {})}
    response = templates.TemplateResponse(
        request, template, full, status_code=status, headers=headers
    )
    if messages:
        flash.clear(response)
    if viewer is not None:
        # A page with someone's data stays out of shared caches and the back button
        # after logout.
        response.headers.setdefault("Cache-Control", "no-store")
    return response
