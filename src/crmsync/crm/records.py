"""Create, read, update, delete, assign and share customer records — with access checks.

Every function takes the caller's ``Principal`` and the session, checks rights through
crmsync.crm.access, flushes and never commits (the caller's unit of work does).
References to other records (``account_id``…) must point at a record the caller can read
in the same organisation; otherwise they are refused as invalid, so they cannot be used
to probe for records either.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from crmsync.core.types import Depth, Privilege, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.errors import Forbidden, InvalidReference, NotFound
from crmsync.crm.models.org import Team, User
from crmsync.crm.models.records import Account, Case, Contact, CustomerRecord, Lead, Opportunity
from crmsync.crm.models.sharing import RecordShare
from crmsync.crm.pagination import Page, paginate

R = TypeVar("R", bound=CustomerRecord)

RECORD_MODELS: dict[RecordType, type[CustomerRecord]] = {
    RecordType.ACCOUNT: Account,
    RecordType.CONTACT: Contact,
    RecordType.LEAD: Lead,
    RecordType.OPPORTUNITY: Opportunity,
    RecordType.CASE: Case,
}
_MODEL_BY_TABLE = {model.__table__.name: model for model in RECORD_MODELS.values()}  # type: ignore[attr-defined]


def contact_name() -> ColumnElement[str]:
    """A contact's full name in SQL, as ``Contact.full_name`` writes it in Python."""
    return func.trim(Contact.first_name + " " + Contact.last_name)


def _references(model: type[CustomerRecord]) -> dict[str, type[CustomerRecord]]:
    """Columns of ``model`` that point at another customer record: {'account_id': Account}."""
    found: dict[str, type[CustomerRecord]] = {}
    for column in model.__table__.columns:  # type: ignore[attr-defined]
        for foreign_key in column.foreign_keys:
            target = _MODEL_BY_TABLE.get(foreign_key.column.table.name)
            if target is not None:
                found[column.key] = target
    return found


def _check_references(
    session: Session, principal: Principal, model: type[CustomerRecord], values: dict[str, Any]
) -> None:
    for field_name, target_model in _references(model).items():
        target_id = values.get(field_name)
        if target_id is None:
            continue
        target = session.get(target_model, target_id)
        if target is None or not access.can(session, principal, target, Privilege.READ):
            raise InvalidReference(
                f"{field_name} names no {target_model.record_type.value} you can see",
                field=field_name,
            )


def get_user_in_org(session: Session, principal: Principal, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.organisation_id != principal.organisation_id:
        raise InvalidReference("owner_id names no user of this organisation", field="owner_id")
    return user


def require_assign_to(principal: Principal, record_type: RecordType, new_owner: User) -> None:
    """May the principal make ``new_owner`` the owner of a ``record_type``?"""
    if new_owner.id == principal.user_id:
        return
    depth = principal.depth(record_type, Privilege.ASSIGN)
    reaches = depth is Depth.ORGANISATION or (
        depth is Depth.BUSINESS_UNIT and new_owner.business_unit_id == principal.business_unit_id
    )
    if not reaches:
        raise Forbidden(
            f"You may not assign a {record_type.value} to that user", privilege="assign"
        )


def create_record(
    session: Session,
    principal: Principal,
    model: type[R],
    values: dict[str, Any],
    owner_id: uuid.UUID | None = None,
) -> R:
    access.require_type_privilege(principal, model.record_type, Privilege.CREATE)
    owner = get_user_in_org(session, principal, owner_id or principal.user_id)
    require_assign_to(principal, model.record_type, owner)
    _check_references(session, principal, model, values)
    record = model(  # type: ignore[call-arg]  # mixin columns are not in the stub __init__
        **values,
        organisation_id=principal.organisation_id,
        owner_id=owner.id,
        owning_business_unit_id=owner.business_unit_id,
    )
    session.add(record)
    session.flush()
    return record


def get_record(
    session: Session,
    principal: Principal,
    model: type[R],
    record_id: uuid.UUID,
    privilege: Privilege = Privilege.READ,
) -> R:
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(model.record_type.value, record_id)
    access.require(session, principal, record, privilege)
    return record


def list_records(
    session: Session,
    principal: Principal,
    model: type[R],
    *,
    cursor: str | None = None,
    limit: int = 50,
    filters: dict[str, Any] | None = None,
) -> Page[R]:
    query = select(model).where(access.visible(model, principal))
    for column_name, value in (filters or {}).items():
        if value is not None:
            query = query.where(getattr(model, column_name) == value)
    return paginate(session, query, model.created_at, model.id, cursor=cursor, limit=limit)


def update_record(session: Session, principal: Principal, record: R, values: dict[str, Any]) -> R:
    access.require(session, principal, record, Privilege.WRITE)
    _check_references(session, principal, type(record), values)
    for name, value in values.items():
        setattr(record, name, value)
    session.flush()
    return record


def delete_record(session: Session, principal: Principal, record: CustomerRecord) -> None:
    access.require(session, principal, record, Privilege.DELETE)
    session.execute(
        delete(RecordShare).where(
            RecordShare.record_type == record.record_type, RecordShare.record_id == record.id
        )
    )
    session.delete(record)
    session.flush()


def assign_record(
    session: Session, principal: Principal, record: Any, new_owner_id: uuid.UUID
) -> None:
    """Give ``record`` (customer record or activity) to another owner in the organisation."""
    access.require(session, principal, record, Privilege.ASSIGN)
    new_owner = get_user_in_org(session, principal, new_owner_id)
    record_type = access.record_type_of(record)
    require_assign_to(principal, record_type, new_owner)
    record.owner_id = new_owner.id
    record.owning_business_unit_id = new_owner.business_unit_id
    session.flush()


def share_record(
    session: Session,
    principal: Principal,
    record: Any,
    *,
    team_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    can_write: bool = False,
) -> RecordShare:
    """Share ``record`` with one team or one user. Sharing needs the assign privilege."""
    access.require(session, principal, record, Privilege.ASSIGN)
    if (team_id is None) == (user_id is None):
        raise InvalidReference("Share with exactly one of team_id or user_id", field="team_id")
    if team_id is not None:
        team = session.get(Team, team_id)
        if team is None or team.organisation_id != principal.organisation_id:
            raise InvalidReference("team_id names no team of this organisation", field="team_id")
    if user_id is not None:
        get_user_in_org(session, principal, user_id)
    record_type = access.record_type_of(record)
    share = RecordShare(
        organisation_id=principal.organisation_id,
        record_type=record_type,
        record_id=record.id,
        team_id=team_id,
        user_id=user_id,
        can_write=can_write,
    )
    session.add(share)
    session.flush()
    return share
