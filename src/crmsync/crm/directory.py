"""Users, teams, business units and security roles — the organisation's directory.

Everyone in an organisation may read its directory (names and addresses are what makes
email resolvable). Changing it follows ``crm.access``:

* depth: the privilege on the user, team, role, business-unit or queue type must reach the
  entry (yourself / your business unit / the organisation; roles need organisation depth);
* nobody grants what they do not hold: roles given to a user or team, and privileges
  written into a role, must be held by the one who gives them, at least as deep;
* nobody changes a user or team holding more than they do, and no role holding more;
* the built-in System Administrator role cannot be edited, and the last active
  administrator of an organisation cannot be deactivated or stripped of the role;
* users' email addresses are unique in the organisation and set by an administrator over
  the user (they decide whose mail is whose), never by the user alone.

Passwords are changed in ``crm.passwords``. Nothing here ever reaches into another
organisation; conflicts name nothing outside the caller's organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.types import Depth, Privilege, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.auth import hash_password
from crmsync.crm.errors import Conflict, Forbidden, InvalidReference, NotFound, RuleViolation
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models.org import (
    BusinessUnit,
    Queue,
    RolePrivilege,
    SecurityRole,
    Team,
    User,
    UserAddress,
    team_members,
    team_roles,
    user_roles,
)
from crmsync.crm.models.sharing import EmailAddressEntry

D = TypeVar("D", User, Team, SecurityRole, BusinessUnit, Queue)

_TYPE_OF: dict[type[Any], RecordType] = {
    User: RecordType.USER,
    Team: RecordType.TEAM,
    SecurityRole: RecordType.ROLE,
    BusinessUnit: RecordType.BUSINESS_UNIT,
    Queue: RecordType.QUEUE,
}
# What a user may change on their own user without any directory privilege.
SELF_SERVICE_FIELDS = frozenset({"full_name"})


def get_in_org(session: Session, principal: Principal, model: type[D], entry_id: uuid.UUID) -> D:
    entry = session.get(model, entry_id)
    if entry is None or entry.organisation_id != principal.organisation_id:
        raise NotFound(_TYPE_OF[model].value, entry_id)
    return entry


def list_in_org(session: Session, principal: Principal, model: type[D]) -> Sequence[D]:
    query = select(model).where(model.organisation_id == principal.organisation_id)
    order = User.username if model is User else model.name  # type: ignore[attr-defined]
    return session.scalars(query.order_by(order)).all()


def _flush_unique(session: Session, what: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} already exists in this organisation") from exc


def _roles(
    session: Session, principal: Principal, role_ids: Sequence[uuid.UUID]
) -> list[SecurityRole]:
    roles = []
    for role_id in dict.fromkeys(role_ids):
        role = session.get(SecurityRole, role_id)
        if role is None or role.organisation_id != principal.organisation_id:
            raise InvalidReference("role_ids names no role of this organisation", field="role_ids")
        roles.append(role)
    return roles


def _user(session: Session, principal: Principal, user_id: uuid.UUID, field: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.organisation_id != principal.organisation_id:
        raise InvalidReference(f"{field} names no user of this organisation", field=field)
    return user


def _business_unit(session: Session, principal: Principal, unit_id: uuid.UUID) -> BusinessUnit:
    unit = session.get(BusinessUnit, unit_id)
    if unit is None or unit.organisation_id != principal.organisation_id:
        raise InvalidReference(
            "business_unit_id names no business unit of this organisation",
            field="business_unit_id",
        )
    return unit


def _require_addresses_free(
    session: Session,
    organisation_id: uuid.UUID,
    addresses: Sequence[str],
    owner_id: uuid.UUID,
    field: str,
) -> None:
    """Refuse an address another user or queue of the organisation already has.

    A user's or queue's addresses decide whose mailbox and whose party an email is; two
    owners of one address would let one read as the other.
    """
    wanted = {address for address in map(normalise_address, addresses) if address}
    if len(wanted) != len(addresses):
        raise RuleViolation("DUPLICATE_ADDRESS", f"{field} lists an address twice", field=field)
    taken = session.scalars(
        select(EmailAddressEntry.address).where(
            EmailAddressEntry.organisation_id == organisation_id,
            EmailAddressEntry.address.in_(wanted),
            EmailAddressEntry.record_type.in_((RecordType.USER, RecordType.QUEUE)),
            EmailAddressEntry.record_id != owner_id,
        )
    ).first()
    if taken is not None:
        raise Conflict(f"{taken} is already the address of another user or queue", field=field)


def _addresses(
    session: Session, organisation_id: uuid.UUID, addresses: Sequence[str], user_id: uuid.UUID
) -> list[UserAddress]:
    _require_addresses_free(session, organisation_id, addresses, user_id, "email_addresses")
    return [
        UserAddress(position=position, address=address)
        for position, address in enumerate(addresses)
    ]


def _require_grantable_roles(principal: Principal, roles: Sequence[SecurityRole]) -> None:
    access.require_grantable(principal, access.grants_of(roles))


def require_an_administrator(session: Session, organisation_id: uuid.UUID) -> None:
    """Raise unless an active user of the organisation still holds the System Administrator
    role, directly or through a team: without one, nobody could ever grant anything again.
    """
    session.flush()
    system_role = select(SecurityRole.id).where(
        SecurityRole.organisation_id == organisation_id, SecurityRole.is_system.is_(True)
    )
    direct = exists().where(user_roles.c.user_id == User.id, user_roles.c.role_id.in_(system_role))
    through_team = exists().where(
        team_members.c.user_id == User.id,
        team_members.c.team_id == team_roles.c.team_id,
        team_roles.c.role_id.in_(system_role),
    )
    query = select(User.id).where(
        User.organisation_id == organisation_id,
        User.is_active.is_(True),
        or_(direct, through_team),
    )
    if session.scalars(query.limit(1)).first() is None:
        raise RuleViolation(
            "LAST_ADMINISTRATOR",
            "That would leave the organisation without an active System Administrator; "
            "give the role to someone else first",
        )


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
    access.require_in_unit(principal, RecordType.USER, Privilege.CREATE, business_unit_id)
    _business_unit(session, principal, business_unit_id)
    roles = _roles(session, principal, role_ids)
    _require_grantable_roles(principal, roles)
    user_id = uuid.uuid4()
    user = User(
        id=user_id,
        organisation_id=principal.organisation_id,
        business_unit_id=business_unit_id,
        username=username,
        full_name=full_name,
        password_hash=hash_password(password) if password else None,
        addresses=_addresses(session, principal.organisation_id, email_addresses, user_id),
        roles=roles,
    )
    session.add(user)
    _flush_unique(session, f"A user named {username!r}")
    create_mailbox_for(session, user=user)
    return user


def update_user(session: Session, principal: Principal, user: User, values: dict[str, Any]) -> User:
    """Apply sent fields; passwords are not among them (see ``crm.passwords``)."""
    is_self = user.id == principal.user_id
    if not (is_self and values.keys() <= SELF_SERVICE_FIELDS):
        access.require_entry(principal, Privilege.WRITE, user)
        if not is_self:
            access.require_dominates(principal, access.grants_held(user), "The user")
    if "email_addresses" in values:
        _require_address_administrator(principal, user)
        user.addresses = _addresses(
            session, user.organisation_id, values["email_addresses"], user.id
        )
    if "business_unit_id" in values and values["business_unit_id"] != user.business_unit_id:
        unit = _business_unit(session, principal, values["business_unit_id"])
        access.require_in_unit(principal, RecordType.USER, Privilege.WRITE, unit.id)
        user.business_unit_id = unit.id
    if "role_ids" in values:
        roles = _roles(session, principal, values["role_ids"])
        changed = set(roles).symmetric_difference(user.roles)
        _require_grantable_roles(principal, list(changed))
        user.roles = roles
    for name in ("full_name", "is_active", "username"):
        if name in values:
            setattr(user, name, values[name])
    _flush_unique(session, "A user with that username")
    if "role_ids" in values or "is_active" in values:
        require_an_administrator(session, user.organisation_id)
    return user


def _require_address_administrator(principal: Principal, user: User) -> None:
    depth = principal.depth(RecordType.USER, Privilege.WRITE)
    if (
        depth is None
        or depth is Depth.USER
        or not access.covers_entry(principal, Privilege.WRITE, user)
    ):
        raise Forbidden(
            "A user's email addresses are set by an administrator over the user",
            privilege="write",
        )


def create_queue(
    session: Session,
    principal: Principal,
    *,
    name: str,
    email: str | None,
    business_unit_id: uuid.UUID,
    owner_id: uuid.UUID | None = None,
) -> Queue:
    access.require_in_unit(principal, RecordType.QUEUE, Privilege.CREATE, business_unit_id)
    _business_unit(session, principal, business_unit_id)
    owner = _user(session, principal, owner_id or principal.user_id, "owner_id")
    queue_id = uuid.uuid4()
    if email:
        _require_addresses_free(session, principal.organisation_id, [email], queue_id, "email")
    queue = Queue(
        id=queue_id,
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
    access.require_in_unit(principal, RecordType.BUSINESS_UNIT, Privilege.CREATE, parent_id)
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
    access.require_in_unit(principal, RecordType.TEAM, Privilege.CREATE, business_unit_id)
    _business_unit(session, principal, business_unit_id)
    roles = _roles(session, principal, role_ids)
    _require_grantable_roles(principal, roles)
    team = Team(
        organisation_id=principal.organisation_id,
        business_unit_id=business_unit_id,
        name=name,
        members=[_user(session, principal, member, "member_ids") for member in member_ids],
        roles=roles,
    )
    session.add(team)
    _flush_unique(session, f"A team named {name!r}")
    return team


def update_team(session: Session, principal: Principal, team: Team, values: dict[str, Any]) -> Team:
    """Rename, change members or roles. A team's members hold its roles, so whoever
    changes a team must hold what it grants (and joining it is granting it to oneself)."""
    access.require_entry(principal, Privilege.WRITE, team)
    access.require_dominates(principal, access.grants_of(team.roles), "The team")
    if "name" in values:
        team.name = values["name"]
    if "member_ids" in values:
        team.members = [_user(session, principal, m, "member_ids") for m in values["member_ids"]]
    if "role_ids" in values:
        roles = _roles(session, principal, values["role_ids"])
        _require_grantable_roles(principal, roles)
        team.roles = roles
    _flush_unique(session, "A team with that name")
    if values.keys() & {"member_ids", "role_ids"}:
        require_an_administrator(session, team.organisation_id)
    return team


def create_role(
    session: Session,
    principal: Principal,
    *,
    name: str,
    description: str,
    privileges: Sequence[tuple[RecordType, Privilege, Depth]],
) -> SecurityRole:
    if access.require_type_privilege(principal, RecordType.ROLE, Privilege.CREATE) is not (
        Depth.ORGANISATION
    ):
        raise Forbidden(
            "Roles belong to the whole organisation: creating one needs the role create "
            "privilege at organisation depth",
            privilege="create",
        )
    rows = _privilege_rows(privileges)
    access.require_grantable(principal, _grants_in(rows))
    role = SecurityRole(
        organisation_id=principal.organisation_id, name=name, description=description
    )
    role.privileges = rows
    session.add(role)
    _flush_unique(session, f"A role named {name!r}")
    return role


def set_role_privileges(
    session: Session,
    principal: Principal,
    role: SecurityRole,
    privileges: Sequence[tuple[RecordType, Privilege, Depth]],
) -> SecurityRole:
    access.require_entry(principal, Privilege.WRITE, role)
    if role.is_system:
        raise RuleViolation(
            "BUILT_IN_ROLE",
            f"{role.name} is built in and cannot be edited; create a role of your own",
        )
    access.require_dominates(principal, access.grants_of([role]), "The role")
    rows = _privilege_rows(privileges)
    access.require_grantable(principal, _grants_in(rows))
    role.privileges = []
    session.flush()
    role.privileges = rows
    session.flush()
    return role


def _grants_in(rows: Sequence[RolePrivilege]) -> access.Grants:
    return {(row.record_type, row.privilege): row.depth for row in rows}


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
