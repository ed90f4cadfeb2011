"""Who is looking at a page: the logged-in user, from the ``crmsync_session`` cookie.

A page route depends on ``CurrentViewer`` (or ``WebPrincipal`` for the rights alone; an
administrator's page on ``AdminViewer`` or ``BriefAdminViewer``, which answer the 404
page to anyone else, so the pages' existence is not shown)::

    @router.get("/accounts/{account_id}", include_in_schema=False)
    def account_page(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
        account = records.get(session, viewer.principal, ...)   # through crm/access.py

The cookie is the only credential pages take (a Bearer token is for the API). On POST,
PUT, PATCH and DELETE the cookie counts only after ``api.csrf.check_cookie_request``: the
request comes from our own origin and carries the session's CSRF token in a
``csrf_token`` form field or an ``X-CSRF-Token`` header — the same rule as the API's.
Without a valid session a page answers ``303 /login?next=<this page>``; an htmx request
gets ``401`` with ``HX-Redirect: /login?next=<the page it came from>``, which htmx follows.

The database session is ``api.deps.SessionDep``: it commits after the route has returned
and before a byte of the answer is sent. Pages that talk to mail servers use
``BriefViewer`` instead, whose transaction ends before the route runs (no transaction is
held across network I/O).

Must never authenticate a page by anything but the session cookie, never skip the CSRF
check on an unsafe request, and never redirect to a ``next`` that is not a path of this
site (``safe_next``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from crmsync.api import csrf
from crmsync.api.credentials import SESSION_COOKIE
from crmsync.api.deps import SessionDep, StoreDep
from crmsync.core.types import Privilege, RecordType, TokenKind
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.auth import authenticate_token
from crmsync.crm.errors import AuthenticationFailed, NotFound
from crmsync.crm.models.org import User

LOGIN_PATH = "/login"
# A web login's session is the only token a page takes, even in the cookie: an API or
# panel token placed there by hand is sent to log in.
PAGE_TOKEN_KINDS = (TokenKind.SESSION,)
# What makes someone an administrator in the navigation: managing the organisation's
# users or its mail setup. The admin pages check their own privileges, record by record.
ADMIN_GRANTS = (
    (RecordType.USER, Privilege.WRITE),
    (RecordType.EMAIL_SERVER_PROFILE, Privilege.WRITE),
    (RecordType.MAILBOX, Privilege.WRITE),
)


class LoginRequired(Exception):
    """No valid session; answered with a redirect to the login page (web/errors.py)."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in user as pages know them: who, and their rights."""

    user_id: uuid.UUID
    username: str
    display_name: str
    principal: Principal

    @property
    def is_admin(self) -> bool:
        return any(self.principal.is_admin_of(*grant) for grant in ADMIN_GRANTS)

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.username, user.full_name or user.username, load_principal(user))


def safe_next(value: str | None) -> str:
    """``value`` if it is a path of this site to go on to after login, else ``/``.

    ``/accounts/1?tab=emails`` → itself; ``https://evil.example/``, ``//evil.example``,
    ``/\\evil.example``, ``javascript:…``, ``/login`` → ``/``.
    """
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in (LOGIN_PATH, "/logout"):
        return "/"
    return value


def login_url(next_path: str | None) -> str:
    target = safe_next(next_path)
    return LOGIN_PATH if target == "/" else f"{LOGIN_PATH}?next={quote(target, safe='/')}"


def _coming_from(request: Request) -> str | None:
    """The page to come back to after login: this one, or for htmx the page it is on."""
    if request.headers.get("HX-Request"):
        current = request.headers.get("HX-Current-URL", "")
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path else None
    if request.method not in ("GET", "HEAD"):
        return None  # a form's target is no page to land on
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def login_redirect(request: Request) -> Response:
    """Where a request without a valid session goes."""
    target = login_url(_coming_from(request))
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def get_session_token(request: Request) -> str:
    """The session cookie, CSRF-checked on unsafe requests."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    await csrf.check_cookie_request(request, token)
    return token


SessionToken = Annotated[str, Depends(get_session_token)]


def _viewer(request: Request, user: User) -> Viewer:
    viewer = Viewer.of(user)
    request.state.viewer = viewer  # for render(): the layout shows who is logged in
    return viewer


def get_viewer(request: Request, token: SessionToken, session: SessionDep) -> Viewer:
    try:
        user = authenticate_token(session, token, kinds=PAGE_TOKEN_KINDS)
    except AuthenticationFailed as exc:  # TokenOutOfScope too
        raise LoginRequired from exc
    return _viewer(request, user)


CurrentViewer = Annotated[Viewer, Depends(get_viewer)]


def get_principal(viewer: CurrentViewer) -> Principal:
    return viewer.principal


WebPrincipal = Annotated[Principal, Depends(get_principal)]


def get_viewer_briefly(request: Request, token: SessionToken, store: StoreDep) -> Viewer:
    """The viewer, from a transaction that ends before the route runs."""
    try:
        with store.transaction() as session:
            return _viewer(request, authenticate_token(session, token, kinds=PAGE_TOKEN_KINDS))
    except AuthenticationFailed as exc:
        raise LoginRequired from exc


BriefViewer = Annotated[Viewer, Depends(get_viewer_briefly)]


def get_optional_viewer(request: Request, store: StoreDep) -> Viewer | None:
    """The viewer if a valid session cookie came with a safe request, else None.

    For pages anyone may see (login): never for unsafe requests, which must pass the CSRF
    check through ``CurrentViewer``.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token or request.method not in csrf.SAFE_METHODS:
        return None
    try:
        with store.transaction() as session:
            return _viewer(request, authenticate_token(session, token, kinds=PAGE_TOKEN_KINDS))
    except AuthenticationFailed:
        return None


OptionalViewer = Annotated[Viewer | None, Depends(get_optional_viewer)]


def _admin(viewer: Viewer) -> Viewer:
    if not viewer.is_admin:
        # A salesperson learns nothing, not even that the page exists. Each page still
        # checks the privileges of what it reads and changes through crm/access.py.
        raise NotFound("page", "")
    return viewer


def get_admin_viewer(viewer: CurrentViewer) -> Viewer:
    return _admin(viewer)


AdminViewer = Annotated[Viewer, Depends(get_admin_viewer)]


def get_admin_viewer_briefly(viewer: BriefViewer) -> Viewer:
    return _admin(viewer)


BriefAdminViewer = Annotated[Viewer, Depends(get_admin_viewer_briefly)]
