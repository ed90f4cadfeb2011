"""Login sessions: the one throttled password login, and its cookies, for API and web pages.

``POST /api/v1/auth/login`` (api/routes/auth.py) and the web login form
(web/pages/auth.py) both call ``log_in``, so the two cannot drift apart: the attempt is
charged against the account and the client address before the password is checked
(crm/throttle.py), in a transaction of its own so that a failure's charge stays counted;
a success refunds it and issues a session token that lives ``Settings.session_hours``.
``set_session_cookies`` then sets the HttpOnly, SameSite=Strict session cookie (Secure
behind https) and the readable ``crmsync_csrf`` cookie; ``end_session`` revokes a session
and ``clear_session_cookies`` removes both cookies again.

The client address is the socket's peer, or X-Forwarded-For when the peer is a proxy
uvicorn trusts (127.0.0.1 by default; FORWARDED_ALLOW_IPS names others).

Must never log, store or return a password, nor store a session token other than as
crm/auth.py's digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.api.credentials import SESSION_COOKIE
from crmsync.api.csrf import CSRF_COOKIE, csrf_token_for_session
from crmsync.api.schemas.org import TokenIssued, TokenPublic
from crmsync.config import Settings
from crmsync.core.types import TokenKind
from crmsync.crm import throttle
from crmsync.crm.auth import authenticate_password, digest_token, issue_token
from crmsync.crm.db import utcnow
from crmsync.crm.models.org import ApiToken
from crmsync.crm.store import Store


@dataclass(frozen=True)
class LoginSession:
    """A session just issued: its public description, the clear token and its lifetime."""

    issued: TokenIssued
    token: str
    lifetime: timedelta

    def __repr__(self) -> str:  # the clear token never goes into a log line
        return f"LoginSession({self.issued.prefix}…, {self.lifetime})"


def issued_token(row: ApiToken, clear: str) -> TokenIssued:
    return TokenIssued.model_validate(
        {**TokenPublic.model_validate(row).model_dump(), "token": clear}
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def log_in(
    request: Request,
    store: Store,
    settings: Settings,
    *,
    username: str,
    password: str,
    organisation: str | None = None,
) -> LoginSession:
    """A new session for this username and password, throttled.

    Raises ``throttle.TooManyAttempts`` (429, before the password is looked at) while the
    account or the address is locked, ``AuthenticationFailed`` for a wrong username or
    password, and ``RuleViolation`` ORGANISATION_REQUIRED when the instance serves
    several organisations and none is named.
    """
    account = throttle.account_key(organisation, username)
    address = throttle.address_key(client_address(request))
    now = utcnow()
    # Charged in a transaction of its own, so a failed login's charge stays counted.
    with store.transaction() as session:
        throttle.charge(session, [account, address], now)
    with store.transaction() as session:
        user = authenticate_password(session, username, password, organisation)
        throttle.succeeded(session, account, address)
        throttle.forget_old(session, now)
        lifetime = timedelta(hours=settings.session_hours)
        row, clear = issue_token(
            session, user, "web login", kind=TokenKind.SESSION, lifetime=lifetime
        )
        issued = issued_token(row, clear)
    return LoginSession(issued, clear, lifetime)


def set_session_cookies(request: Request, response: Response, login: LoginSession) -> str:
    """Set the session cookie and the CSRF cookie on ``response``; returns the CSRF token."""
    secure = request.url.scheme == "https"
    max_age = int(login.lifetime.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        login.token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    csrf_token = csrf_token_for_session(request, login.token)
    # Not HttpOnly: the web app's scripts read it to send X-CSRF-Token.
    response.set_cookie(CSRF_COOKIE, csrf_token, max_age=max_age, samesite="strict", secure=secure)
    return csrf_token


def end_session(session: Session, token: str) -> None:
    """Revoke ``token`` if it is a login session; API tokens are revoked only by name."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest_token(token)))
    if row is not None and row.kind is TokenKind.SESSION:
        row.revoked = True


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
