"""A person's own tokens: the API tokens they made and the side panels they connected.

    GET  /options/tokens               each token with its kind, name, the start of its
                                       value (``crms_Ab3dE…``), created, last used,
                                       expires, and whether it still works
    POST /options/tokens/{id}/revoke   (CSRF-checked) revoke one; 303 back to the list

The list and the revoking are crm/auth.py's (``list_tokens``, ``revoke_token``), the
very functions behind ``GET /api/v1/tokens`` and ``DELETE /api/v1/tokens/{id}``: login
sessions and connect codes are not listed, and another person's token is 404 — it does
not exist for the viewer.

Must never show a token's value (only its stored prefix), and never revoke a token of
anyone but the viewer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from crmsync.api.deps import SessionDep
from crmsync.core.types import TokenKind
from crmsync.crm import auth
from crmsync.crm.db import utcnow
from crmsync.crm.models.org import ApiToken
from crmsync.web import flash
from crmsync.web.deps import CurrentViewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

TOKENS_PATH = "/options/tokens"
KIND_LABELS = {TokenKind.API: "API token", TokenKind.PANEL: "Side panel"}


@dataclass(frozen=True)
class TokenRow:
    """One token as the list shows it."""

    id: uuid.UUID
    kind: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    state: str  # "live", "revoked" or "expired"

    @property
    def live(self) -> bool:
        return self.state == "live"


def _row(token: ApiToken, now: datetime) -> TokenRow:
    expired = token.expires_at is not None and token.expires_at <= now
    state = "revoked" if token.revoked else "expired" if expired else "live"
    return TokenRow(
        id=token.id,
        kind=KIND_LABELS.get(token.kind, token.kind.value),
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        expires_at=token.expires_at,
        state=state,
    )


@router.get(TOKENS_PATH, name="token_list")
def token_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    now = utcnow()
    rows = [_row(token, now) for token in auth.list_tokens(session, viewer.user_id)]
    # Newest first: the panel just connected is the one people look for.
    rows.reverse()
    return render(request, "options/tokens.html", {"nav": "options", "tokens": rows})


@router.post(TOKENS_PATH + "/{token_id}/revoke", name="revoke_token")
def revoke_token(
    request: Request, token_id: uuid.UUID, viewer: CurrentViewer, session: SessionDep
) -> Response:
    row = auth.revoke_token(session, viewer.user_id, token_id)  # NotFound: 404 page
    response = RedirectResponse(TOKENS_PATH, status_code=303)
    flash.add(request, response, f"Revoked “{row.name}”: it no longer works.", level="success")
    return response
