"""Dependencies every route uses: the store, a session per request, the caller.

The caller is found from ``Authorization: Bearer <token>`` (API tokens and login
sessions) or the ``crmsync_session`` cookie the web UI gets at login — on an unsafe
request, the cookie counts only once the CSRF check has passed (``get_caller_token``,
csrf.py).

Which tokens a route accepts follows from the dependency it takes (the kinds are
crm/auth.py's): ``CurrentUser``, ``CurrentPrincipal`` and ``BriefPrincipal`` accept API
tokens and login sessions, and refuse side panel tokens (403 TOKEN_OUT_OF_SCOPE);
``PanelUser`` and ``PanelPrincipal`` accept those and panel tokens too — for the panel's
routes (api/routes/panel.py), and for any web page or route the side panel calls.

A panel token's whole scope, then — what the side panel beside an email does, no more:

- ``GET /panel/lookup`` and ``POST /panel/disconnect`` (api/routes/panel.py);
- ``GET /search`` (to pick a regarding record);
- ``POST /emails/track``, ``POST /emails/{id}/untrack``, ``PUT /emails/{id}/regarding``
  and ``POST /addresses/resolve`` (api/routes/email_actions.py).

Everything else — records, users, mailboxes, outgoing email, tokens — is 403
TOKEN_OUT_OF_SCOPE with a panel token. Within that scope the token acts with all of
its owner's rights (crm/access.py decides as for any caller).

The session commits once, after the route returns without error and its answer is
serialized, and *before* a byte of the answer is sent: a client that got a 2xx can rely
on the next request seeing what it did. A commit that fails is a 500 problem
(COMMIT_FAILED), never the 2xx the route had prepared.

Must never let a route's answer go out before its transaction has committed, nor
authenticate by the cookie other than through ``get_caller_token``, nor accept a panel
token outside ``PanelUser``/``PanelPrincipal``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crmsync.api import csrf
from crmsync.api.credentials import SESSION_COOKIE as SESSION_COOKIE  # routes import it here
from crmsync.api.credentials import bearer_token
from crmsync.config import Settings
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.auth import GENERAL_KINDS, PANEL_KINDS, authenticate_token
from crmsync.crm.errors import AuthenticationFailed, CrmError
from crmsync.crm.models.org import User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store

log = logging.getLogger(__name__)


class CommitFailed(CrmError):
    """The database refused the commit: nothing the request did was saved."""

    code = "COMMIT_FAILED"
    status = 500


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(store: Annotated[Store, Depends(get_store)]) -> Iterator[Session]:
    committing = False
    try:
        with store.transaction() as session:
            yield session
            committing = True  # the route returned; leaving the block commits
    except SQLAlchemyError as exc:
        if not committing:
            raise
        log.exception("Commit failed")
        raise CommitFailed("The change could not be saved") from exc


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": FastAPI runs the code after `yield` as soon as the route has returned
# and its answer is serialized, before the answer is sent. The default ("request") runs it
# after the answer has gone out, so a client could act on a 2xx whose transaction had not
# committed yet — or never would. Serializing inside the transaction keeps lazy loads
# working; a failing commit raises before anything is sent, and becomes the response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def token_from(request: Request) -> str | None:
    """The token a request carries, unchecked: for a route whose caller is already known
    (logout ends that very session). To find the caller, depend on ``CurrentUser``."""
    return bearer_token(request) or request.cookies.get(SESSION_COOKIE)


async def get_caller_token(request: Request) -> str | None:
    """The caller's token: the Bearer token, else the session cookie after the CSRF check."""
    token = bearer_token(request)
    if token:
        return token
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await csrf.check_cookie_request(request, cookie)
    return cookie


CallerToken = Annotated[str | None, Depends(get_caller_token)]


def _required(token: str | None) -> str:
    if not token:
        raise AuthenticationFailed("Log in or send an API token (Authorization: Bearer ...)")
    return token


def get_current_user(token: CallerToken, session: SessionDep) -> User:
    return authenticate_token(session, _required(token), kinds=GENERAL_KINDS)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_principal(user: CurrentUser) -> Principal:
    return load_principal(user)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_principal_briefly(token: CallerToken, store: StoreDep) -> Principal:
    """The caller's rights, in a transaction of its own that ends before the route runs.

    For routes that talk to mail servers: no database transaction may stay open across
    network I/O.
    """
    caller = _required(token)
    with store.transaction() as session:
        return load_principal(authenticate_token(session, caller, kinds=GENERAL_KINDS))


BriefPrincipal = Annotated[Principal, Depends(get_principal_briefly)]


def get_panel_user(token: CallerToken, session: SessionDep) -> User:
    """The caller, for the side panel's routes: a panel token, an API token or a session."""
    return authenticate_token(session, _required(token), kinds=PANEL_KINDS)


PanelUser = Annotated[User, Depends(get_panel_user)]


def get_panel_principal(user: PanelUser) -> Principal:
    return load_principal(user)


PanelPrincipal = Annotated[Principal, Depends(get_panel_principal)]


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
