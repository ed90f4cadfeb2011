"""Login for the web UI, and each user's own API tokens.

Login answers with a session token and sets it as an HttpOnly, SameSite=Strict cookie;
API clients send tokens as ``Authorization: Bearer``. A token is shown only when created.
Password guessing is throttled per account and per client address; the login itself is
api/sessions.py's ``log_in``, which the web pages' login form calls too.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, Request, Response

from crmsync.api.csrf import LoginIssued
from crmsync.api.deps import (
    CurrentUser,
    SessionDep,
    SettingsDep,
    StoreDep,
    token_from,
)
from crmsync.api.schemas.org import LoginRequest, TokenCreate, TokenIssued, TokenPublic
from crmsync.api.sessions import (
    clear_session_cookies,
    end_session,
    issued_token,
    log_in,
    set_session_cookies,
)
from crmsync.crm import auth as crm_auth
from crmsync.crm.auth import issue_token
from crmsync.crm.models.org import ApiToken

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginIssued)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
) -> LoginIssued:
    """Log in; throttled per account and per client address (429 with Retry-After)."""
    started = log_in(
        request,
        store,
        settings,
        username=body.username,
        password=body.password.get_secret_value(),
        organisation=body.organisation,
    )
    csrf_token = set_session_cookies(request, response, started)
    return LoginIssued(**started.issued.model_dump(), csrf_token=csrf_token)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    token = token_from(request)
    if token:
        end_session(session, token)
    response = Response(status_code=204)
    clear_session_cookies(response)
    return response


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, user: CurrentUser) -> Sequence[ApiToken]:
    """Your API tokens and side panel tokens (``kind``); login sessions are not listed."""
    return crm_auth.list_tokens(session, user.id)


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenIssued:
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, clear = issue_token(session, user, body.name, lifetime=lifetime)
    return issued_token(row, clear)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> Response:
    crm_auth.revoke_token(session, user.id, token_id)
    return Response(status_code=204)
