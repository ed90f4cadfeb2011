"""CRUD, assign, share (and, for customer records, timeline) routes.

One factory builds the same routes for every customer record type and activity type;
the shapes differ, the rules (crmsync.crm) do not.
"""

# No ``from __future__ import annotations`` here: the route factory annotates bodies with
# schema classes held in local variables, which FastAPI must see as real objects.
import uuid
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.api.resources import ActivityResource, RecordResource, Resource
from crmsync.api.schemas import activities as activity_schemas
from crmsync.api.schemas import records as record_schemas
from crmsync.api.schemas.activities import TimelineEntry
from crmsync.api.schemas.common import AssignRequest, Page, ShareRequest
from crmsync.core.types import ACTIVITY_TYPES, RecordType
from crmsync.crm.activities import ACTIVITY_MODELS
from crmsync.crm.pagination import MAX_PAGE
from crmsync.crm.records import RECORD_MODELS, assign_record, share_record
from crmsync.crm.timeline import timeline

CursorQuery = Query(default=None, description="From the previous page's next_cursor.")
LimitQuery = Query(default=50, ge=1, le=MAX_PAGE)

# record type → (path, Create, Update, Public)
SHAPES: dict[RecordType, tuple[str, type[BaseModel], type[BaseModel], type[BaseModel]]] = {
    RecordType.ACCOUNT: (
        "accounts",
        record_schemas.AccountCreate,
        record_schemas.AccountUpdate,
        record_schemas.AccountPublic,
    ),
    RecordType.CONTACT: (
        "contacts",
        record_schemas.ContactCreate,
        record_schemas.ContactUpdate,
        record_schemas.ContactPublic,
    ),
    RecordType.LEAD: (
        "leads",
        record_schemas.LeadCreate,
        record_schemas.LeadUpdate,
        record_schemas.LeadPublic,
    ),
    RecordType.OPPORTUNITY: (
        "opportunities",
        record_schemas.OpportunityCreate,
        record_schemas.OpportunityUpdate,
        record_schemas.OpportunityPublic,
    ),
    RecordType.CASE: (
        "cases",
        record_schemas.CaseCreate,
        record_schemas.CaseUpdate,
        record_schemas.CasePublic,
    ),
    RecordType.EMAIL: (
        "emails",
        activity_schemas.EmailCreate,
        activity_schemas.EmailUpdate,
        activity_schemas.EmailPublic,
    ),
    RecordType.APPOINTMENT: (
        "appointments",
        activity_schemas.AppointmentCreate,
        activity_schemas.AppointmentUpdate,
        activity_schemas.AppointmentPublic,
    ),
    RecordType.TASK: (
        "tasks",
        activity_schemas.TaskCreate,
        activity_schemas.TaskUpdate,
        activity_schemas.TaskPublic,
    ),
}


def _resource(record_type: RecordType) -> Resource:
    if record_type in ACTIVITY_TYPES:
        return ActivityResource(record_type, ACTIVITY_MODELS[record_type])
    return RecordResource(record_type, RECORD_MODELS[record_type])


def resource_router(record_type: RecordType) -> APIRouter:
    path, create_schema, update_schema, public_schema = SHAPES[record_type]
    resource = _resource(record_type)
    router = APIRouter(prefix=f"/{path}", tags=[path])
    name = record_type.value

    @router.post("", status_code=201, response_model=public_schema, name=f"create_{name}")
    def create(
        body: create_schema,  # type: ignore[valid-type]
        session: SessionDep,
        principal: CurrentPrincipal,
        owner_id: uuid.UUID | None = Query(default=None, description="Defaults to you."),
    ) -> Any:
        return resource.create(session, principal, body, owner_id)

    @router.get("", response_model=Page[public_schema], name=f"list_{name}")  # type: ignore[valid-type]
    def list_(
        session: SessionDep,
        principal: CurrentPrincipal,
        cursor: str | None = CursorQuery,
        limit: int = LimitQuery,
    ) -> Any:
        return resource.list(session, principal, cursor, limit)

    @router.get("/{record_id:uuid}", response_model=public_schema, name=f"get_{name}")
    def get(record_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Any:
        return resource.get(session, principal, record_id)

    @router.patch("/{record_id:uuid}", response_model=public_schema, name=f"update_{name}")
    def update(
        record_id: uuid.UUID,
        body: update_schema,  # type: ignore[valid-type]
        session: SessionDep,
        principal: CurrentPrincipal,
    ) -> Any:
        record = resource.get(session, principal, record_id)
        return resource.update(session, principal, record, body)

    @router.delete("/{record_id:uuid}", status_code=204, name=f"delete_{name}")
    def delete(record_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Response:
        resource.delete(session, principal, resource.get(session, principal, record_id))
        return Response(status_code=204)

    @router.post("/{record_id:uuid}/assign", response_model=public_schema, name=f"assign_{name}")
    def assign(
        record_id: uuid.UUID, body: AssignRequest, session: SessionDep, principal: CurrentPrincipal
    ) -> Any:
        record = resource.get(session, principal, record_id)
        assign_record(session, principal, record, body.owner_id)
        return record

    @router.post("/{record_id:uuid}/shares", status_code=204, name=f"share_{name}")
    def share(
        record_id: uuid.UUID, body: ShareRequest, session: SessionDep, principal: CurrentPrincipal
    ) -> Response:
        record = resource.get(session, principal, record_id)
        share_record(
            session,
            principal,
            record,
            team_id=body.team_id,
            user_id=body.user_id,
            can_write=body.can_write,
        )
        return Response(status_code=204)

    if record_type not in ACTIVITY_TYPES:

        @router.get(
            "/{record_id:uuid}/timeline",
            response_model=Page[TimelineEntry],
            name=f"timeline_{name}",
        )
        def record_timeline(
            record_id: uuid.UUID,
            session: SessionDep,
            principal: CurrentPrincipal,
            cursor: str | None = CursorQuery,
            limit: int = LimitQuery,
        ) -> Any:
            return timeline(session, principal, record_type, record_id, cursor=cursor, limit=limit)

    return router


def routers() -> list[APIRouter]:
    return [resource_router(record_type) for record_type in SHAPES]
