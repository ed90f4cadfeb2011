"""Errors on pages are pages: friendly HTML for 403, 404, 500 and the rest; the API keeps
its problem+json.

``install`` wraps the application's exception handlers (problems.py, csrf.py): a request
to ``/api/…`` or ``/healthz`` is answered by the API's own handler, as before; any other
— a page, ``/docs``, a static file, a path nobody serves — gets ``error.html``. A missing
or expired session (``deps.LoginRequired``, or ``AuthenticationFailed`` from a page) is
no error page but the way to the login page.

An htmx request gets the same page with the same status; htmx swaps nothing on an error
and static/js/app.js tells the reader what went wrong.

Must never show internals (tracebacks, SQL, secrets): a 500 page says only that nothing
was saved; the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crmsync.api.csrf import CsrfRefused
from crmsync.crm.errors import AuthenticationFailed, CrmError, NotFound
from crmsync.web.deps import LoginRequired, get_optional_viewer, login_redirect
from crmsync.web.security import page_headers
from crmsync.web.templating import render

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]

# Answered as the API answers: problem+json. Everything else is for people.
API_PATHS = ("/api/",)
API_EXACT = ("/healthz",)

MESSAGES = {
    400: "The request could not be understood. Go back and check what you entered.",
    403: "You do not have permission to do that.",
    404: "There is no such page, or it is not yours to see.",
    405: "This page does not take that kind of request.",
    413: "That is more than the server accepts at once.",
    429: "Too many attempts. Wait a little and try again.",
    500: "Something went wrong on our side. Nothing was saved; please try again.",
}
CSRF_MESSAGE = (
    "This request did not come from a page of this site, or the page had expired. "
    "Go back, reload the page and try again."
)


def is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith(API_PATHS) or path in API_EXACT


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_page(
    request: Request,
    status: int,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``error.html`` with ``status``; the security headers are set here, because a 500 is
    answered outside every middleware."""
    all_headers = {**page_headers(), **(headers or {})}
    if status < 500:
        _identify(request)
    context = {
        "status": status,
        "title": _phrase(status),
        "message": message or MESSAGES.get(status, MESSAGES[400 if status < 500 else 500]),
    }
    try:
        return render(request, "error.html", context, status=status, headers=all_headers)
    except Exception:
        log.exception("The error page could not be rendered")
        return HTMLResponse(
            "<!doctype html><title>Error</title><p>Something went wrong.</p>",
            status_code=status,
            headers=all_headers,
        )


def _identify(request: Request) -> None:
    """Find the viewer for the layout when no page dependency did (a path nobody serves)."""
    if getattr(request.state, "viewer", None) is not None:
        return
    try:
        get_optional_viewer(request, request.app.state.store)
    except Exception:  # the error page matters more than the name in its bar
        log.exception("The viewer of an error page could not be found")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 401:
        return login_redirect(request)
    return error_page(request, exc.status_code, headers=dict(exc.headers or {}))


async def _crm_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CrmError)
    if isinstance(exc, AuthenticationFailed):
        return login_redirect(request)
    headers = {}
    retry_after = exc.fields.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    # A CrmError's detail is written for people; a 404's names what was looked for, which
    # says no more than the address did, but reads badly.
    message = None if isinstance(exc, NotFound) or exc.status >= 500 else exc.detail
    return error_page(request, exc.status, message, headers)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    log.info("Cross-site request refused on %s: %s", request.url.path, exc.reason)
    return error_page(request, 403, CSRF_MESSAGE)


async def _invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_page(request, 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("Unhandled error on %s", request.url.path, exc_info=exc)
    return error_page(request, 500)


async def _login_required(request: Request, _exc: Exception) -> Response:
    return login_redirect(request)


def _pages_first(api_handler: Handler | None, page_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if api_handler is not None and is_api(request):
            return await api_handler(request, exc)
        return await page_handler(request, exc)

    return handle


def install(app: FastAPI) -> None:
    """Answer errors on pages with pages; call after the API's handlers are installed."""
    ours: dict[type[Exception], Handler] = {
        StarletteHTTPException: _http_error,
        CrmError: _crm_error,
        CsrfRefused: _csrf_refused,
        RequestValidationError: _invalid_input,
        Exception: _unexpected,
    }
    for exc_class, page_handler in ours.items():
        api_handler = app.exception_handlers.get(exc_class)
        app.add_exception_handler(exc_class, _pages_first(api_handler, page_handler))  # type: ignore[arg-type]
    app.add_exception_handler(LoginRequired, _login_required)
