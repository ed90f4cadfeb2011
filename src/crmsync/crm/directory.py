"""Users, teams, business units and security roles — the organisation's directory.

Everyone in an organisation may read its directory (names and addresses are what makes
email resolvable); changing it needs the matching privilege on the user, team, role or
business-unit type. Nothing here ever reaches into another organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.auth import hash_password
from crmsync.crm.errors import Conflict, InvalidReference, NotFound
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models.org import (
    BusinessUnit,
    Queue,
    RolePrivilege,
    SecurityRole,
    Team,
    User,
    UserAddress,
)
from crmsync.crm.types import Depth, Privilege, RecordType

D = TypeVar("D", User, Team, SecurityRole, BusinessUnit, Queue)

_TYPE_OF: dict[type[Any], RecordType] = {
    User: RecordType.USER,
    Team: RecordType.TEAM,
    SecurityRole: RecordType.ROLE,
    BusinessUnit: RecordType.BUSINESS_UNIT,
    Queue: RecordType.QUEUE,
}


def get_in_org(session: Session, principal: Principal, model: type[D], entry_id: uuid.UUID) -> D:
    entry = session.get(model, entry_id)
    if entry is None or entry.organisation_id != principal.organisation_id:
        raise NotFound(_TYPE_OF[model].value, entry_id)
    return entry


def list_in_org(session: Session, principal: Principal, model: type[D]) -> Sequence[D]:
    query = select(model).where(model.organisation_id == principal.organisation_id)
    order = User.username if model is User else model.name  # type: ignore[attr-defined]
    return session.scalars(query.order_by(order)).all()


def _require_admin(principal: Principal, model: type[Any], privilege: Privilege) -> None:
    access.require_type_privilege(principal, _TYPE_OF[model], privilege)


def _flush_unique(session: Session, what: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} already exists") from exc


def _roles(
    session: Session, principal: Principal, role_ids: Sequence[uuid.UUID]
) -> list[SecurityRole]:
    roles = []
    for role_id in role_ids:
        role = session.get(SecurityRole, role_id)
        if role is None or role.organisation_id != principal.organisation_id:
            raise InvalidReference("role_ids names no role of this organisation", field="role_ids")
        roles.append(role)
    return roles


def _business_unit(session: Session, principal: Principal, unit_id: uuid.UUID) -> BusinessUnit:
    unit = session.get(BusinessUnit, unit_id)
    if unit is None or unit.organisation_id != principal.organisation_id:
        raise InvalidReference(
            "business_unit_id names no business unit of this organisation",
            field="business_unit_id",
        )
    return unit


def create_user(
    session: Session,
    principal: Principal,
    *,
    username: str,
    full_name: str,
    business_unit_id: uuid.UUID,
    email_addresses: Sequence[str] = (),
    password: str | None = None,
    role_ids: Sequence[uuid.UUID] = (),
) -> User:
    _require_admin(principal, User, Privilege.CREATE)
    _business_unit(session, principal, business_unit_id)
    user = User(
        organisation_id=principal.organisation_id,
        business_unit_id=business_unit_id,
        username=username,
        full_name=full_name,
        password_hash=hash_password(password) if password else None,
        addresses=[
            UserAddress(position=position, address=address)
            for position, address in enumerate(email_addresses)
        ],
        roles=_roles(session, principal, role_ids),
    )
    session.add(user)
    _flush_unique(session, f"A user named {username!r}")
    create_mailbox_for(session, user=user)
    return user


def update_user(session: Session, principal: Principal, user: User, values: dict[str, Any]) -> User:
    is_self = user.id == principal.user_id
    admin_fields = {"business_unit_id", "is_active", "role_ids", "username"}
    if not is_self or admin_fields & values.keys():
        _require_admin(principal, User, Privilege.WRITE)
    if "business_unit_id" in values:
        user.business_unit_id = _business_unit(session, principal, values["business_unit_id"]).id
    if "role_ids" in values:
        user.roles = _roles(session, principal, values["role_ids"])
    if "email_addresses" in values:
        user.addresses = [
            UserAddress(position=position, address=address)
            for position, address in enumerate(values["email_addresses"])
        ]
    if "password" in values:
        user.password_hash = hash_password(values["password"]) if values["password"] else None
    for name in ("full_name", "is_active", "username"):
        if name in values:
            setattr(user, name, values[name])
    _flush_unique(session, "That username")
    return user


def create_queue(
    session: Session,
    principal: Principal,
    *,
    name: str,
    email: str | None,
    business_unit_id: uuid.UUID,
    owner_id: uuid.UUID | None = None,
) -> Queue:
    _require_admin(principal, Queue, Privilege.CREATE)
    _business_unit(session, principal, business_unit_id)
    owner = get_in_org(session, principal, User, owner_id or principal.user_id)
    queue = Queue(
        organisation_id=principal.organisation_id,
        business_unit_id=business_unit_id,
        owner_id=owner.id,
        name=name,
        email=email,
    )
    session.add(queue)
    _flush_unique(session, f"A queue named {name!r}")
    create_mailbox_for(session, queue=queue)
    return queue


def create_business_unit(
    session: Session, principal: Principal, *, name: str, parent_id: uuid.UUID
) -> BusinessUnit:
    _require_admin(principal, BusinessUnit, Privilege.CREATE)
    _business_unit(session, principal, parent_id)
    unit = BusinessUnit(organisation_id=principal.organisation_id, name=name, parent_id=parent_id)
    session.add(unit)
    _flush_unique(session, f"A business unit named {name!r}")
    return unit


def create_team(
    session: Session,
    principal: Principal,
    *,
    name: str,
    business_unit_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID] = (),
    role_ids: Sequence[uuid.UUID] = (),
) -> Team:
    _require_admin(principal, Team, Privilege.CREATE)
    _business_unit(session, principal, business_unit_id)
    team = Team(
        organisation_id=principal.organisation_id,
        business_unit_id=business_unit_id,
        name=name,
        members=[get_in_org(session, principal, User, member) for member in member_ids],
        roles=_roles(session, principal, role_ids),
    )
    session.add(team)
    _flush_unique(session, f"A team named {name!r}")
    return team


def update_team(session: Session, principal: Principal, team: Team, values: dict[str, Any]) -> Team:
    _require_admin(principal, Team, Privilege.WRITE)
    if "name" in values:
        team.name = values["name"]
    if "member_ids" in values:
        team.members = [get_in_org(session, principal, User, m) for m in values["member_ids"]]
    if "role_ids" in values:
        team.roles = _roles(session, principal, values["role_ids"])
    _flush_unique(session, "A team with that name")
    return team


def create_role(
    session: Session,
    principal: Principal,
    *,
    name: str,
    description: str,
    privileges: Sequence[tuple[RecordType, Privilege, Depth]],
) -> SecurityRole:
    _require_admin(principal, SecurityRole, Privilege.CREATE)
    role = SecurityRole(
        organisation_id=principal.organisation_id, name=name, description=description
    )
    role.privileges = _privilege_rows(privileges)
    session.add(role)
    _flush_unique(session, f"A role named {name!r}")
    return role


def set_role_privileges(
    session: Session,
    principal: Principal,
    role: SecurityRole,
    privileges: Sequence[tuple[RecordType, Privilege, Depth]],
) -> SecurityRole:
    _require_admin(principal, SecurityRole, Privilege.WRITE)
    role.privileges = []
    session.flush()
    role.privileges = _privilege_rows(privileges)
    session.flush()
    return role


def _privilege_rows(
    privileges: Sequence[tuple[RecordType, Privilege, Depth]],
) -> list[RolePrivilege]:
    unique: dict[tuple[RecordType, Privilege], Depth] = {}
    for record_type, privilege, depth in privileges:
        current = unique.get((record_type, privilege))
        if current is None or depth.rank > current.rank:
            unique[(record_type, privilege)] = depth
    return [
        RolePrivilege(record_type=record_type, privilege=privilege, depth=depth)
        for (record_type, privilege), depth in unique.items()
    ]
