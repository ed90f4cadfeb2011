"""What a person does to a tracked email (crm/email_actions.py, sync/manual_track.py).

PUT  /api/v1/emails/{id}/regarding   set or clear what it regards (write on it, append
                                     on emails, append-to on the record)
POST /api/v1/emails/{id}/untrack     delete it, and never track its message again
                                     (delete on it)
POST /api/v1/emails/track            track a message a mailbox you can read saw; 409
                                     ALREADY_TRACKED with ``email_id`` when it is
POST /api/v1/addresses/resolve       a contact or lead for an address; every
                                     unresolved party with it links to the new record

The side panel does all four, so they take ``PanelPrincipal``: a panel token works here
as an API token or a session does (api/deps.py has the panel token's whole scope).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from crmsync.api.deps import PanelPrincipal, SessionDep, StoreDep
from crmsync.api.problems import PROBLEM_JSON, problem
from crmsync.api.schemas.activities import EmailPublic
from crmsync.api.schemas.email_actions import (
    RegardingClear,
    RegardingSet,
    ResolveAddress,
    ResolvedAddress,
    TrackByLedgerId,
    TrackByMessageId,
    TrackResult,
    UntrackResult,
)
from crmsync.core.types import RecordType
from crmsync.crm import email_actions
from crmsync.crm.models.activities import Email
from crmsync.crm.models.records import Contact
from crmsync.sync import manual_track

router = APIRouter(tags=["emails"])

# No {id} in the path to make the document list it: a message is named in the body.
_NOT_FOUND = {
    404: {
        "description": "NOT_FOUND: no mailbox you can read saw that message (with its bytes kept).",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


@router.put("/emails/{email_id}/regarding", response_model=EmailPublic, name="set_regarding")
def set_regarding(
    email_id: uuid.UUID,
    body: RegardingSet | RegardingClear,
    session: SessionDep,
    principal: PanelPrincipal,
) -> Email:
    """Make the email regard a record (its correlation method becomes ``manual``), or
    nothing (both fields null)."""
    regarding = (
        (RecordType(body.regarding_type), body.regarding_id)
        if isinstance(body, RegardingSet)
        else None
    )
    return email_actions.set_regarding(session, principal, email_id, regarding)


@router.post("/emails/{email_id}/untrack", response_model=UntrackResult, name="untrack_email")
def untrack_email(
    email_id: uuid.UUID, session: SessionDep, principal: PanelPrincipal
) -> UntrackResult:
    """Delete the email and keep its message from being tracked again, from any mailbox.

    Its raw message is kept: ``POST /emails/track`` tracks it again.
    """
    result = email_actions.untrack_email(session, principal, email_id)
    return UntrackResult(email_id=email_id, sightings=result.sightings)


@router.post(
    "/emails/track",
    status_code=201,
    response_model=TrackResult,
    responses=_NOT_FOUND,  # type: ignore[arg-type]
    name="track_message",
)
def track_message(
    body: Annotated[TrackByMessageId | TrackByLedgerId, Body()],
    session: SessionDep,
    store: StoreDep,
    principal: PanelPrincipal,
) -> TrackResult | JSONResponse:
    """Track a message crmsync saw in a mailbox you can read but did not track (or that
    was untracked), through the engine's pipeline: correlated and resolved as the engine
    does, whatever the owner's tracking preferences say."""
    try:
        tracked = manual_track.track_message(
            session,
            store.blobs,
            principal,
            message_id=body.message_id if isinstance(body, TrackByMessageId) else None,
            ledger_id=body.ledger_id if isinstance(body, TrackByLedgerId) else None,
        )
    except manual_track.AlreadyTracked as exc:
        # A problem with one member more than crm errors carry: the email it is, when the
        # caller may read it.
        if exc.email_id is None:
            return problem(409, exc.code, "AlreadyTracked", exc.detail, field="message_id")
        return problem(
            409,
            exc.code,
            "AlreadyTracked",
            exc.detail,
            field="message_id",
            email_id=str(exc.email_id),
        )
    return TrackResult(reason=tracked.reason, email=EmailPublic.model_validate(tracked.email))


@router.post(
    "/addresses/resolve",
    status_code=201,
    response_model=ResolvedAddress,
    tags=["addresses"],
    name="resolve_address",
)
def resolve_address(
    body: ResolveAddress, session: SessionDep, principal: PanelPrincipal
) -> ResolvedAddress:
    """Create a contact or lead (yours) for an address no record has, named from the
    display name; every unresolved party with that address in the organisation — in any
    email, appointment or task — then links to it."""
    resolved = email_actions.resolve_address(
        session, principal, body.address, body.display_name, RecordType(body.as_type)
    )
    record = resolved.record
    name = record.full_name if isinstance(record, Contact) else record.subject
    return ResolvedAddress(
        record_type=record.record_type,
        record_id=record.id,
        name=name,
        parties=resolved.parties,
    )
