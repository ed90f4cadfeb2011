"""Create, read, update and delete activities (email, appointment, task) and their parties.

Rights: creating needs the create privilege on the activity type; setting the regarding
record needs append on the activity type and append-to on the record (as in Dynamics),
and the record must be one the caller can read. A party names a user, queue, contact,
account or lead of the organisation, or keeps a bare address that resolved to nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, with_polymorphic

from crmsync.core.types import EmailStatus, Participation, Privilege, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.db import utcnow
from crmsync.crm.errors import Conflict, InvalidReference, NotFound
from crmsync.crm.models.activities import Activity, ActivityParty, Appointment, Email, Task
from crmsync.crm.models.org import Queue, User
from crmsync.crm.pagination import Page, paginate
from crmsync.crm.records import RECORD_MODELS, get_user_in_org, require_assign_to

A = TypeVar("A", bound=Activity)

ACTIVITY_MODELS: dict[RecordType, type[Activity]] = {
    RecordType.EMAIL: Email,
    RecordType.APPOINTMENT: Appointment,
    RecordType.TASK: Task,
}
PARTY_TYPES = (
    RecordType.USER,
    RecordType.QUEUE,
    RecordType.CONTACT,
    RecordType.ACCOUNT,
    RecordType.LEAD,
)


@dataclass(frozen=True)
class PartySpec:
    participation: Participation
    party_type: RecordType | None = None
    party_id: uuid.UUID | None = None
    address: str | None = None
    display_name: str = ""


def activity_type_of(model: type[Activity]) -> RecordType:
    return RecordType(str(model.__mapper__.polymorphic_identity))


def _display_name(record: Any) -> str:
    for attribute in ("full_name", "name", "subject"):
        value = getattr(record, attribute, None)
        if value:
            return str(value)
    return ""


def _load_party_record(
    session: Session, principal: Principal, record_type: RecordType, record_id: uuid.UUID
) -> Any:
    if record_type is RecordType.USER:
        model: Any = User
    elif record_type is RecordType.QUEUE:
        model = Queue
    else:
        model = RECORD_MODELS[record_type]
    record = session.get(model, record_id)
    if record is None or record.organisation_id != principal.organisation_id:
        return None
    if record_type in RECORD_MODELS and not access.can(session, principal, record, Privilege.READ):
        return None
    return record


def _build_parties(
    session: Session, principal: Principal, specs: list[PartySpec]
) -> list[ActivityParty]:
    parties = []
    for position, spec in enumerate(specs):
        display_name = spec.display_name
        if spec.party_id is not None or spec.party_type is not None:
            if spec.party_type not in PARTY_TYPES or spec.party_id is None:
                raise InvalidReference(
                    "A party needs party_type (user, queue, contact, account, lead) and "
                    "party_id together",
                    field=f"parties.{position}",
                )
            record = _load_party_record(session, principal, spec.party_type, spec.party_id)
            if record is None:
                raise InvalidReference(
                    f"parties.{position} names no {spec.party_type.value} you can see",
                    field=f"parties.{position}.party_id",
                )
            display_name = display_name or _display_name(record)
        elif not spec.address:
            raise InvalidReference(
                "A party needs a record or an address", field=f"parties.{position}"
            )
        parties.append(
            ActivityParty(
                position=position,
                participation=spec.participation,
                party_type=spec.party_type,
                party_id=spec.party_id,
                address=spec.address,
                display_name=display_name,
            )
        )
    return parties


def _check_regarding(
    session: Session,
    principal: Principal,
    activity_type: RecordType,
    regarding_type: RecordType | None,
    regarding_id: uuid.UUID | None,
) -> None:
    if regarding_type is None and regarding_id is None:
        return
    if regarding_type not in RECORD_MODELS or regarding_id is None:
        raise InvalidReference(
            "regarding needs a customer record type and id together", field="regarding_type"
        )
    target = session.get(RECORD_MODELS[regarding_type], regarding_id)
    if target is None or not access.can(session, principal, target, Privilege.READ):
        raise InvalidReference(
            f"regarding names no {regarding_type.value} you can see", field="regarding_id"
        )
    access.require_type_privilege(principal, activity_type, Privilege.APPEND)
    access.require(session, principal, target, Privilege.APPEND_TO)


def create_activity(
    session: Session,
    principal: Principal,
    model: type[A],
    values: dict[str, Any],
    parties: list[PartySpec],
    owner_id: uuid.UUID | None = None,
) -> A:
    activity_type = activity_type_of(model)
    access.require_type_privilege(principal, activity_type, Privilege.CREATE)
    owner = get_user_in_org(session, principal, owner_id or principal.user_id)
    require_assign_to(principal, activity_type, owner)
    _check_regarding(
        session,
        principal,
        activity_type,
        values.get("regarding_type"),
        values.get("regarding_id"),
    )
    values = dict(values)
    values.setdefault(
        "occurred_at",
        values.get("actual_start") or values.get("scheduled_start") or utcnow(),
    )
    activity = model(
        **values,
        organisation_id=principal.organisation_id,
        owner_id=owner.id,
        owning_business_unit_id=owner.business_unit_id,
    )
    activity.parties = _build_parties(session, principal, parties)
    session.add(activity)
    session.flush()
    return activity


def get_activity(
    session: Session,
    principal: Principal,
    model: type[A],
    activity_id: uuid.UUID,
    privilege: Privilege = Privilege.READ,
) -> A:
    activity = session.get(model, activity_id)
    if activity is None:
        raise NotFound(activity_type_of(model).value, activity_id)
    access.require(session, principal, activity, privilege)
    return activity


def list_activities(
    session: Session,
    principal: Principal,
    model: type[A],
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[A]:
    query = select(model).where(access.visible(model, principal))
    return paginate(session, query, model.occurred_at, model.id, cursor=cursor, limit=limit)


def update_activity(
    session: Session,
    principal: Principal,
    activity: A,
    values: dict[str, Any],
    parties: list[PartySpec] | None = None,
) -> A:
    access.require(session, principal, activity, Privilege.WRITE)
    if isinstance(activity, Email) and activity.status in (
        EmailStatus.PENDING_SEND,
        EmailStatus.SENDING,
    ):
        raise Conflict(
            f"The email is {activity.status.value.replace('_', ' ')}: cancel it before editing",
            field="status",
        )
    if "regarding_type" in values or "regarding_id" in values:
        _check_regarding(
            session,
            principal,
            activity.activity_type,
            values.get("regarding_type", activity.regarding_type),
            values.get("regarding_id", activity.regarding_id),
        )
    for name, value in values.items():
        setattr(activity, name, value)
    if parties is not None:
        activity.parties = _build_parties(session, principal, parties)
    session.flush()
    return activity


def delete_activity(session: Session, principal: Principal, activity: Activity) -> None:
    access.require(session, principal, activity, Privilege.DELETE)
    session.delete(activity)
    session.flush()


def any_activity() -> Any:
    """An Activity entity that loads every subtype's columns in one query."""
    return with_polymorphic(Activity, [Email, Appointment, Task])
