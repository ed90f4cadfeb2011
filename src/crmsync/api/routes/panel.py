"""The side panel's API: connecting a panel, and looking up the email beside it.

Connecting (crm/connect.py has the flow and the code format):

* ``POST /panel/connect-codes`` — a signed-in user (session cookie, or a Bearer session
  or API token; not a panel token) gets a one-time code, valid 5 minutes;
* ``POST /panel/tokens`` — the panel exchanges the code, with no other credential, for a
  panel token shown once. Guesses are charged per client address before the code is
  looked at (429 with Retry-After while locked), as logins are;
* the owner lists and revokes panel tokens with their other tokens (``GET /tokens``,
  ``DELETE /tokens/{id}``), and the panel may revoke its own: ``POST /panel/disconnect``.

Every other panel route takes ``PanelPrincipal`` (api/deps.py): panel tokens work here,
and besides only on the few routes the panel acts through — search, track, untrack, set
regarding, add an address as contact or lead — which api/deps.py lists; anywhere else a
panel token is 403 TOKEN_OUT_OF_SCOPE. API tokens and sessions work here too, so the
web app's own pages can call the same routes.

Must never return a code or a token except in the answer that creates it, nor let a
guess at a code skip the throttle.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from crmsync.api.deps import (
    CallerToken,
    CurrentUser,
    PanelPrincipal,
    PanelUser,
    SessionDep,
    StoreDep,
)
from crmsync.api.schemas.org import TokenIssued, TokenPublic
from crmsync.api.schemas.panel import (
    ConnectCodeIssued,
    EmailFindingPublic,
    MatchPublic,
    PanelLookupPublic,
    PanelTokenRequest,
    PersonPublic,
    RecordRefPublic,
)
from crmsync.core.types import Participation
from crmsync.crm import connect, panel_lookup, throttle
from crmsync.crm.db import utcnow
from crmsync.crm.errors import AuthenticationFailed
from crmsync.crm.panel_lookup import Match, PanelLookup, RecordRef

router = APIRouter(prefix="/panel", tags=["panel"])

# One header value: a whole To line of a large meeting still fits.
HeaderValue = Annotated[str, Field(max_length=8000)]
_ADDRESSES = (
    "Repeat the parameter, or give several addresses in one value separated by commas, "
    "each 'Name <address>' or a bare address; what is not an address is skipped. At most "
    f"{panel_lookup.MAX_PARTICIPANTS} distinct addresses in all (else 422 "
    "TOO_MANY_PARTICIPANTS)."
)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/connect-codes", response_model=ConnectCodeIssued, status_code=201)
def create_connect_code(session: SessionDep, user: CurrentUser) -> ConnectCodeIssued:
    """A one-time code that connects a side panel to your account (5 minutes, single use)."""
    code, expires_at = connect.issue_connect_code(session, user)
    return ConnectCodeIssued(code=code, expires_at=expires_at)


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def exchange_connect_code(
    body: PanelTokenRequest, request: Request, store: StoreDep
) -> TokenIssued:
    """Exchange a connect code for a panel token; throttled per client address (429)."""
    key = connect.code_guess_key(_client_address(request))
    now = utcnow()
    # Charged in a transaction of its own, before the code is looked at, so a wrong
    # guess's charge stays counted and a burst of guesses is counted in full.
    with store.transaction() as session:
        throttle.charge(session, [key], now)
    with store.transaction() as session:
        row, clear = connect.exchange_connect_code(
            session, body.code, body.name, lifetime=timedelta(days=body.expires_in_days), now=now
        )
        connect.refund_guess(session, key)
        throttle.forget_old(session, now)
        issued = TokenIssued.model_validate(
            {**TokenPublic.model_validate(row).model_dump(), "token": clear}
        )
    return issued


@router.post("/disconnect", status_code=204)
def disconnect(token: CallerToken, session: SessionDep, user: PanelUser) -> Response:
    """Revoke the panel token this request carries (403 for any other credential)."""
    if not token:  # PanelUser has refused such a request already
        raise AuthenticationFailed("Send the panel token (Authorization: Bearer ...)")
    connect.revoke_panel_token(session, token)
    return Response(status_code=204)


@router.get("/lookup", response_model=PanelLookupPublic)
def lookup(
    session: SessionDep,
    principal: PanelPrincipal,
    message_id: Annotated[
        str | None,
        Query(
            max_length=998,
            description="The email's Internet Message-ID, with or without <>.",
        ),
    ] = None,
    from_: Annotated[
        list[HeaderValue], Query(alias="from", max_length=100, description=_ADDRESSES)
    ] = [],  # noqa: B006 - FastAPI copies defaults; this list is never mutated
    to: Annotated[list[HeaderValue], Query(max_length=100, description=_ADDRESSES)] = [],  # noqa: B006
    cc: Annotated[list[HeaderValue], Query(max_length=100, description=_ADDRESSES)] = [],  # noqa: B006
    subject: Annotated[
        str | None,
        Query(max_length=8000, description="The subject the mail client shows, echoed back."),
    ] = None,
) -> PanelLookupPublic:
    """Who the email's people are in the CRM, and whether the email is tracked.

    Only what you can read: an address carried by records you cannot read is unresolved,
    an email tracked out of your sight is seen or unknown.
    """
    participants = panel_lookup.parse_participants(
        {Participation.FROM: from_, Participation.TO: to, Participation.CC: cc}
    )
    found = panel_lookup.lookup(
        session, principal, participants=participants, message_id=message_id
    )
    return _public(found, subject)


def _ref(ref: RecordRef | None) -> RecordRefPublic | None:
    if ref is None:
        return None
    return RecordRefPublic(record_type=ref.record_type, id=ref.id, name=ref.name)


def _match(match: Match) -> MatchPublic:
    return MatchPublic(
        record_type=match.record.record_type,
        id=match.record.id,
        name=match.record.name,
        colleague=match.colleague,
        account=_ref(match.account),
    )


def _public(found: PanelLookup, subject: str | None) -> PanelLookupPublic:
    email = found.email
    return PanelLookupPublic(
        people=[
            PersonPublic(
                address=person.address,
                name=person.name,
                roles=person.roles,
                resolution=person.resolution,
                records=[_match(match) for match in person.matches],
            )
            for person in found.people
        ],
        email=EmailFindingPublic(
            state=email.state,
            message_id=email.message_id,
            email_id=email.email_id,
            subject=email.subject if email.email_id is not None else subject,
            regarding=_ref(email.regarding),
            correlation_method=email.correlation_method,
            can_write=email.can_write,
            reason=email.reason,
        ),
    )
