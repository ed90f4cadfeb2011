"""Cross-site request forgery defence for requests authenticated by the session cookie.

A browser attaches the ``crmsync_session`` cookie to every request to this server,
whichever site's page makes it; an ``Authorization: Bearer`` header it never adds by
itself. So an unsafe request (POST, PUT, PATCH, DELETE) that the cookie authenticates
must show that one of our own pages sent it (``check_cookie_request``, which deps.py runs
whenever it finds the caller by the cookie):

1. its ``Origin`` — or, when a browser sent none, the origin of its ``Referer`` — is the
   server's own (scheme://host[:port] of the request) or one in
   ``Settings.allowed_origins``; with neither header it is refused;
2. it carries the session's CSRF token: an ``X-CSRF-Token`` header (fetch, htmx) or a
   ``csrf_token`` field of a form body (server-rendered forms).

Besides, every route first runs ``check_request``: an unsafe request that names another
site in Origin/Referer is refused whatever its credentials, which also stops login CSRF
(a login needs no cookie, so a script that keeps cookies can log in again freely). Bearer
requests are exempt from both.

The token is ``base64url(HMAC-SHA256(key, session token))``: nothing is stored, it dies
with the session, and every worker and machine derives the same one, because the key is
derived from the configured secret material (``CRMSYNC_SECRET_KEY`` or
``<data_dir>/secret.key``, the keys the SecretBox uses) — the first key makes tokens, all
of them are accepted, so a key rotation does not log anybody out.

For the web app: ``csrf_token_for(request)`` is the token of the request's session (None
without one). Render it into every form, as ``<input type="hidden" name="csrf_token"
value="...">``, and into htmx requests, e.g. ``hx-headers='{"X-CSRF-Token": "..."}'`` on
``<body>``. Login also answers it as ``csrf_token`` and sets it in the ``crmsync_csrf``
cookie, which scripts may read.

Refusals are 403 problem+json, code ``CSRF_FAILED``, with a ``reason``: ORIGIN_MISSING,
ORIGIN_FOREIGN, TOKEN_MISSING or TOKEN_INVALID.

Must never accept a token that is not bound to the request's own session cookie, log a
token, or read a body other than through the size-limited ``receive`` (see limits.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from crmsync.api.credentials import SESSION_COOKIE, bearer_token
from crmsync.api.problems import problem
from crmsync.api.schemas.org import TokenIssued
from crmsync.config import Settings
from crmsync.crm.secrets import KEY_FILE, read_or_create_key_file

CSRF_COOKIE = "crmsync_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_LABEL = b"crmsync csrf token v1"  # separates this use of the key material from Fernet's
_DEFAULT_PORTS = {"http": 80, "https": 443}


class LoginIssued(TokenIssued):
    """What login answers: the session token, and the CSRF token that goes with it."""

    csrf_token: str = Field(
        description=f"Send it as {CSRF_HEADER} (or a {CSRF_FIELD} form field) with every "
        "POST, PUT, PATCH and DELETE authenticated by the session cookie."
    )


class CsrfRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class CsrfTokens:
    """Makes and checks the tokens; one per application, in ``app.state.csrf``."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("no CSRF key")
        self._keys = list(keys)

    def __repr__(self) -> str:
        return f"CsrfTokens({len(self._keys)} key(s))"

    @classmethod
    def from_settings(cls, settings: Settings) -> CsrfTokens:
        return cls([_derive(material) for material in _key_material(settings)])

    def issue(self, session_token: str) -> str:
        return _sign(self._keys[0], session_token)

    def verify(self, session_token: str, csrf_token: str) -> bool:
        given = csrf_token.encode("ascii", "replace")
        return any(
            hmac.compare_digest(_sign(key, session_token).encode("ascii"), given)
            for key in self._keys
        )


def _sign(key: bytes, session_token: str) -> str:
    digest = hmac.new(key, session_token.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _derive(material: str) -> bytes:
    return hmac.new(material.encode("utf-8"), _LABEL, hashlib.sha256).digest()


def _key_material(settings: Settings) -> list[str]:
    if settings.secret_key is not None:
        keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",")]
        return [k for k in keys if k]
    path = settings.data_dir / KEY_FILE
    if path.is_file():
        return read_or_create_key_file(path)  # exists: only read
    # Only an application built around a SecretBox given by hand (tests, embedding) gets
    # here: its tokens are valid in this process alone. `crmsync serve` always has a key.
    return [secrets.token_urlsafe(32)]


def csrf_token_for(request: Request) -> str | None:
    """The CSRF token for the session cookie of ``request``; None without a session cookie.

    The one function the web app uses: render it into forms and htmx headers.
    """
    session_token = request.cookies.get(SESSION_COOKIE)
    return csrf_token_for_session(request, session_token) if session_token else None


def csrf_token_for_session(request: Request, session_token: str) -> str:
    """The CSRF token for a session token (at login, before the browser has the cookie)."""
    tokens: CsrfTokens = request.app.state.csrf
    return tokens.issue(session_token)


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of an absolute URL, ports always explicit; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def _own_origins(request: Request, allowed: Iterable[str]) -> set[str]:
    own = _origin(f"{request.url.scheme}://{request.headers.get('host', '')}")
    return {origin for origin in (own, *map(_origin, allowed)) if origin}


def _source(request: Request) -> tuple[str, str | None] | None:
    """Which header names the sending page, and its origin (None when unreadable)."""
    origin = request.headers.get("origin")
    if origin is not None:
        return "Origin", _origin(origin)  # "null" (sandboxed pages, ...) is never ours
    referer = request.headers.get("referer")
    if referer:
        return "Referer", _origin(referer)
    return None


async def _form_token(request: Request) -> str | None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        return None
    # Starlette caches the parsed form on the request: a route with Form parameters has
    # parsed it already (FastAPI reads bodies before dependencies) and gets the same one.
    # Reading goes through the size-limited receive, so this cannot buffer past the limit.
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def _refuse_foreign(request: Request, source: tuple[str, str | None]) -> None:
    settings: Settings = request.app.state.settings
    if source[1] not in _own_origins(request, settings.allowed_origins):
        raise CsrfRefused("ORIGIN_FOREIGN", f"The {source[0]} header names another site")


async def check_request(request: Request) -> None:
    """The first dependency of every route: refuses unsafe requests from foreign pages."""
    if request.method in SAFE_METHODS or bearer_token(request):
        return
    source = _source(request)
    if source is not None:
        _refuse_foreign(request, source)


async def check_cookie_request(request: Request, session_token: str) -> None:
    """For a request the session cookie authenticates: same origin, and the token."""
    if request.method in SAFE_METHODS:
        return
    source = _source(request)
    if source is None:
        raise CsrfRefused(
            "ORIGIN_MISSING", "A request authenticated by cookie needs an Origin or Referer"
        )
    _refuse_foreign(request, source)
    token = request.headers.get(CSRF_HEADER) or await _form_token(request)
    if not token:
        raise CsrfRefused(
            "TOKEN_MISSING", f"Send the CSRF token as {CSRF_HEADER} or a {CSRF_FIELD} form field"
        )
    tokens: CsrfTokens = request.app.state.csrf
    if not tokens.verify(session_token, token):
        raise CsrfRefused("TOKEN_INVALID", "The CSRF token does not belong to this session")


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CsrfRefused)
    return problem(403, "CSRF_FAILED", "Cross-site request refused", exc.detail, reason=exc.reason)


def install(app: FastAPI, settings: Settings) -> None:
    """Keep the token maker and answer refusals; ``check_request`` is added by create_app."""
    app.state.csrf = CsrfTokens.from_settings(settings)
    app.add_exception_handler(CsrfRefused, _refused)
