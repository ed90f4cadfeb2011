"""Login for the web UI, and each user's own API tokens.

Login answers with a session token and sets it as an HttpOnly, SameSite=Strict cookie;
API clients send tokens as ``Authorization: Bearer``. A token is shown only when created.
Password guessing is throttled per account and per client address (crm/throttle.py). The
client address is the socket's peer, or X-Forwarded-For when the peer is a proxy uvicorn
trusts (127.0.0.1 by default; FORWARDED_ALLOW_IPS names others).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from crmsync.api.csrf import CSRF_COOKIE, LoginIssued, csrf_token_for_session
from crmsync.api.deps import (
    SESSION_COOKIE,
    CurrentUser,
    SessionDep,
    SettingsDep,
    StoreDep,
    token_from,
)
from crmsync.api.schemas.org import LoginRequest, TokenCreate, TokenIssued, TokenPublic
from crmsync.crm import throttle
from crmsync.crm.auth import authenticate_password, digest_token, issue_token
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.org import ApiToken
from crmsync.crm.types import TokenKind

router = APIRouter(tags=["auth"])


def _issued(row: ApiToken, clear: str) -> TokenIssued:
    return TokenIssued.model_validate(
        {**TokenPublic.model_validate(row).model_dump(), "token": clear}
    )


@router.post("/auth/login", response_model=LoginIssued)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
) -> LoginIssued:
    """Log in; throttled per account and per client address (429 with Retry-After)."""
    account = throttle.account_key(body.organisation, body.username)
    address = throttle.address_key(request.client.host if request.client else "unknown")
    now = utcnow()
    # Charged in a transaction of its own, so a failed login's charge stays counted.
    with store.transaction() as session:
        throttle.charge(session, [account, address], now)
    with store.transaction() as session:
        user = authenticate_password(
            session, body.username, body.password.get_secret_value(), body.organisation
        )
        throttle.succeeded(session, account, address)
        throttle.forget_old(session, now)
        lifetime = timedelta(hours=settings.session_hours)
        row, clear = issue_token(
            session, user, "web login", kind=TokenKind.SESSION, lifetime=lifetime
        )
        issued = _issued(row, clear)
    response.set_cookie(
        SESSION_COOKIE,
        clear,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    csrf_token = csrf_token_for_session(request, clear)
    # Not HttpOnly: the web app's scripts read it to send X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=int(lifetime.total_seconds()),
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return LoginIssued(**issued.model_dump(), csrf_token=csrf_token)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    token = token_from(request)
    if token:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest_token(token)))
        if row is not None and row.kind is TokenKind.SESSION:
            row.revoked = True
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, user: CurrentUser) -> Sequence[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == TokenKind.API)
    return session.scalars(query.order_by(ApiToken.created_at)).all()


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenIssued:
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, clear = issue_token(session, user, body.name, lifetime=lifetime)
    return _issued(row, clear)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("token", token_id)
    row.revoked = True
    return Response(status_code=204)
