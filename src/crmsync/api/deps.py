"""Dependencies every route uses: the store, a session per request, the caller.

The caller is found from ``Authorization: Bearer <token>`` (API tokens and login
sessions) or the ``crmsync_session`` cookie the web UI gets at login. The session commits
once, after the route returns without error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from crmsync.config import Settings
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.auth import authenticate_token
from crmsync.crm.errors import AuthenticationFailed
from crmsync.crm.models.org import User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store

SESSION_COOKIE = "crmsync_session"


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(store: Annotated[Store, Depends(get_store)]) -> Iterator[Session]:
    with store.transaction() as session:
        yield session


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE)


def get_current_user(request: Request, session: SessionDep) -> User:
    token = token_from(request)
    if not token:
        raise AuthenticationFailed("Log in or send an API token (Authorization: Bearer ...)")
    return authenticate_token(session, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_principal(user: CurrentUser) -> Principal:
    return load_principal(user)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_principal_briefly(request: Request, store: StoreDep) -> Principal:
    """The caller's rights, in a transaction of its own that ends before the route runs.

    For routes that talk to mail servers: no database transaction may stay open across
    network I/O.
    """
    with store.transaction() as session:
        token = token_from(request)
        if not token:
            raise AuthenticationFailed("Log in or send an API token (Authorization: Bearer ...)")
        return load_principal(authenticate_token(session, token))


BriefPrincipal = Annotated[Principal, Depends(get_principal_briefly)]


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
