"""Adapters that let one route factory serve customer records and activities alike.

A ``Resource`` turns a validated request body into a call on the matching crm service;
the routes (crmsync.api.routes.resources) never know which kind they serve.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.orm import Session

from crmsync.api.schemas.activities import PartyIn
from crmsync.core.types import RecordType
from crmsync.crm import activities, records
from crmsync.crm.access import Principal
from crmsync.crm.activities import PartySpec
from crmsync.crm.models.activities import Activity
from crmsync.crm.models.records import CustomerRecord
from crmsync.crm.pagination import Page


class Resource(Protocol):
    @property
    def record_type(self) -> RecordType: ...

    def create(
        self, session: Session, principal: Principal, body: BaseModel, owner_id: uuid.UUID | None
    ) -> Any: ...

    def list(
        self, session: Session, principal: Principal, cursor: str | None, limit: int
    ) -> Page[Any]: ...

    def get(self, session: Session, principal: Principal, record_id: uuid.UUID) -> Any: ...

    def update(
        self, session: Session, principal: Principal, record: Any, body: BaseModel
    ) -> Any: ...

    def delete(self, session: Session, principal: Principal, record: Any) -> None: ...


@dataclass(frozen=True)
class RecordResource:
    record_type: RecordType
    model: type[CustomerRecord]

    def create(
        self, session: Session, principal: Principal, body: BaseModel, owner_id: uuid.UUID | None
    ) -> Any:
        return records.create_record(session, principal, self.model, body.model_dump(), owner_id)

    def list(
        self, session: Session, principal: Principal, cursor: str | None, limit: int
    ) -> Page[Any]:
        return records.list_records(session, principal, self.model, cursor=cursor, limit=limit)

    def get(self, session: Session, principal: Principal, record_id: uuid.UUID) -> Any:
        return records.get_record(session, principal, self.model, record_id)

    def update(self, session: Session, principal: Principal, record: Any, body: BaseModel) -> Any:
        values = body.model_dump(exclude_unset=True)
        return records.update_record(session, principal, record, values)

    def delete(self, session: Session, principal: Principal, record: Any) -> None:
        records.delete_record(session, principal, record)


def _party_specs(parties: list[PartyIn]) -> list[PartySpec]:
    return [
        PartySpec(
            participation=party.participation,
            party_type=RecordType(party.party_type) if party.party_type else None,
            party_id=party.party_id,
            address=party.address,
            display_name=party.display_name,
        )
        for party in parties
    ]


def _activity_values(body: BaseModel, *, exclude_unset: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=exclude_unset, exclude={"parties"})
    if values.get("regarding_type") is not None:
        values["regarding_type"] = RecordType(values["regarding_type"])
    return values


@dataclass(frozen=True)
class ActivityResource:
    record_type: RecordType
    model: type[Activity]

    def create(
        self, session: Session, principal: Principal, body: BaseModel, owner_id: uuid.UUID | None
    ) -> Any:
        values = _activity_values(body, exclude_unset=False)
        parties = _party_specs(getattr(body, "parties", []))
        return activities.create_activity(session, principal, self.model, values, parties, owner_id)

    def list(
        self, session: Session, principal: Principal, cursor: str | None, limit: int
    ) -> Page[Any]:
        return activities.list_activities(
            session, principal, self.model, cursor=cursor, limit=limit
        )

    def get(self, session: Session, principal: Principal, record_id: uuid.UUID) -> Any:
        return activities.get_activity(session, principal, self.model, record_id)

    def update(self, session: Session, principal: Principal, record: Any, body: BaseModel) -> Any:
        values = _activity_values(body, exclude_unset=True)
        parties = (
            _party_specs(getattr(body, "parties", None) or [])
            if "parties" in body.model_fields_set
            else None
        )
        return activities.update_activity(session, principal, record, values, parties)

    def delete(self, session: Session, principal: Principal, record: Any) -> None:
        activities.delete_activity(session, principal, record)
