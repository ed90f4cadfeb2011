"""The one access service: who may do what to which record.

A user may act on a record when
  * a security role — the user's own, or one of the user's teams' — grants the privilege
    on the record's type at a depth that covers the record's owner:
      user depth          → the user owns it,
      business-unit depth → its owning business unit is the user's,
      organisation depth  → it is in the user's organisation; or
  * the record is shared with the user or one of the user's teams (read; write when the
    share says so).
Nothing ever crosses organisations.

Every read in the API goes through ``visible()`` (a SQL filter, so lists, counts and the
timeline never leak a row) or ``require()`` (one record). A record the caller may not read
is reported as not found, never as forbidden, so its existence does not leak either.

Directory entries — users, teams, business units, roles, queues — follow the same depths
(``covers_entry``): user depth reaches yourself (a user), your teams, your queues; business
-unit depth the entries of your business unit; organisation depth all. Roles belong to the
whole organisation, so only organisation depth reaches them. Beyond depth, nobody grants
what they do not hold (``require_grantable``: a role, a team's roles, a role's privileges)
and nobody changes a user or team that holds more than they do (``require_dominates``), as
in Dynamics ("you cannot assign a role with more privileges than yours").

Must never be bypassed by a route, and must never do I/O beyond the database session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, inspect, or_, select, true
from sqlalchemy.orm import Session

from crmsync.core.types import ACTIVITY_TYPES, Depth, Privilege, RecordType
from crmsync.crm.errors import Forbidden, NotFound
from crmsync.crm.models.activities import Activity
from crmsync.crm.models.org import BusinessUnit, Queue, SecurityRole, Team, User
from crmsync.crm.models.sharing import RecordShare

Grants = dict[tuple[RecordType, Privilege], Depth]


@dataclass(frozen=True)
class Principal:
    """A user's rights, computed once per request from their roles and teams."""

    user_id: uuid.UUID
    organisation_id: uuid.UUID
    business_unit_id: uuid.UUID
    team_ids: frozenset[uuid.UUID] = frozenset()
    grants: Grants = field(default_factory=dict)

    def depth(self, record_type: RecordType, privilege: Privilege) -> Depth | None:
        return self.grants.get((record_type, privilege))

    def covers(
        self,
        record_type: RecordType,
        privilege: Privilege,
        *,
        organisation_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        business_unit_id: uuid.UUID | None,
    ) -> bool:
        """Whether the role depth alone (no shares) lets the user act on such a record."""
        if organisation_id != self.organisation_id:
            return False
        depth = self.depth(record_type, privilege)
        if depth is None:
            return False
        if depth is Depth.ORGANISATION:
            return True
        if depth is Depth.BUSINESS_UNIT:
            return business_unit_id == self.business_unit_id
        return owner_id == self.user_id

    def is_admin_of(self, record_type: RecordType, privilege: Privilege) -> bool:
        return self.depth(record_type, privilege) is Depth.ORGANISATION


EVERYTHING: Grants = {
    (record_type, privilege): Depth.ORGANISATION
    for record_type in RecordType
    for privilege in Privilege
}


# Stands for the host's operator, who is no user of the organisation.
OPERATOR_ID = uuid.UUID(int=0)


def operator_principal(organisation_id: uuid.UUID, business_unit_id: uuid.UUID) -> Principal:
    """Every privilege at organisation depth in one organisation, held by no user.

    Only the command line, run on the host by its operator, acts so — to recover an
    organisation whose administrators are gone. Records it creates need an owner named
    explicitly: it owns nothing.
    """
    return Principal(
        user_id=OPERATOR_ID,
        organisation_id=organisation_id,
        business_unit_id=business_unit_id,
        grants=dict(EVERYTHING),
    )


def grants_of(roles: Iterable[SecurityRole]) -> Grants:
    """The union of what ``roles`` grant, each (type, privilege) at its deepest depth."""
    grants: Grants = {}
    for role in roles:
        if role.is_system:
            return dict(EVERYTHING)
        for grant in role.privileges:
            key = (grant.record_type, grant.privilege)
            current = grants.get(key)
            if current is None or grant.depth.rank > current.rank:
                grants[key] = grant.depth
    return grants


def roles_held(user: User) -> list[SecurityRole]:
    """The user's roles, their own and their teams'."""
    return list(user.roles) + [role for team in user.teams for role in team.roles]


def grants_held(user: User) -> Grants:
    return grants_of(roles_held(user))


def load_principal(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        organisation_id=user.organisation_id,
        business_unit_id=user.business_unit_id,
        team_ids=frozenset(team.id for team in user.teams),
        grants=grants_held(user),
    )


def _depth_clause(model: Any, principal: Principal, depth: Depth | None) -> ColumnElement[bool]:
    if depth is None:
        return false()
    if depth is Depth.ORGANISATION:
        return true()
    if depth is Depth.BUSINESS_UNIT:
        return model.owning_business_unit_id == principal.business_unit_id  # type: ignore[no-any-return]
    return model.owner_id == principal.user_id  # type: ignore[no-any-return]


def _shared_clause(
    record_type: ColumnElement[Any] | RecordType,
    record_id: ColumnElement[Any] | uuid.UUID,
    principal: Principal,
    write: bool,
) -> ColumnElement[bool]:
    who = [RecordShare.user_id == principal.user_id]
    if principal.team_ids:
        who.append(RecordShare.team_id.in_(principal.team_ids))
    conditions = [
        RecordShare.record_type == record_type,
        RecordShare.record_id == record_id,
        or_(*who),
    ]
    if write:
        conditions.append(RecordShare.can_write.is_(True))
    return exists(select(RecordShare.id).where(*conditions))


def visible(
    model: Any, principal: Principal, privilege: Privilege = Privilege.READ
) -> ColumnElement[bool]:
    """A WHERE clause admitting exactly the rows of ``model`` the principal may act on.

    ``model`` is a mapped class (or alias) with organisation_id, owner_id and
    owning_business_unit_id. For ``Activity`` the record type is per row.
    """
    share_applies = privilege in (Privilege.READ, Privilege.WRITE)
    write = privilege is Privilege.WRITE
    if _is_activity(model):
        by_type = [
            and_(
                model.activity_type == activity_type,
                _depth_clause(model, principal, principal.depth(activity_type, privilege)),
            )
            for activity_type in ACTIVITY_TYPES
        ]
        by_role: ColumnElement[bool] = or_(*by_type)
        record_type: ColumnElement[Any] | RecordType = model.activity_type
    else:
        own_type: RecordType = model.record_type
        record_type = own_type
        by_role = _depth_clause(model, principal, principal.depth(own_type, privilege))
    allowed = (
        or_(by_role, _shared_clause(record_type, model.id, principal, write))
        if share_applies
        else by_role
    )
    return and_(model.organisation_id == principal.organisation_id, allowed)


def _is_activity(model: Any) -> bool:
    # inspect() sees through aliases and with_polymorphic() entities to the mapped class.
    return issubclass(inspect(model).mapper.class_, Activity)


def record_type_of(record: Any) -> RecordType:
    found: RecordType = record.activity_type if isinstance(record, Activity) else record.record_type
    return found


def can(session: Session, principal: Principal, record: Any, privilege: Privilege) -> bool:
    record_type = record_type_of(record)
    if record.organisation_id != principal.organisation_id:
        return False
    if principal.covers(
        record_type,
        privilege,
        organisation_id=record.organisation_id,
        owner_id=record.owner_id,
        business_unit_id=record.owning_business_unit_id,
    ):
        return True
    if privilege not in (Privilege.READ, Privilege.WRITE):
        return False
    shared = _shared_clause(record_type, record.id, principal, privilege is Privilege.WRITE)
    return bool(session.execute(select(shared)).scalar())


def require(session: Session, principal: Principal, record: Any, privilege: Privilege) -> None:
    """Raise unless the principal may act on ``record``.

    No read right → NotFound (existence does not leak); read but not this privilege →
    Forbidden.
    """
    if not can(session, principal, record, Privilege.READ):
        raise NotFound(str(record_type_of(record)), record.id)
    if privilege is not Privilege.READ and not can(session, principal, record, privilege):
        raise Forbidden(
            f"You may not {privilege.value.replace('_', ' ')} this {record_type_of(record)}",
            privilege=privilege.value,
        )


def require_type_privilege(
    principal: Principal, record_type: RecordType, privilege: Privilege
) -> Depth:
    depth = principal.depth(record_type, privilege)
    if depth is None:
        raise Forbidden(
            f"You have no {privilege.value.replace('_', ' ')} privilege on {record_type.value}",
            privilege=privilege.value,
        )
    return depth


# -- the directory: users, teams, business units, roles, queues --------------------------

DirectoryEntry = User | Team | BusinessUnit | SecurityRole | Queue

_DIRECTORY_TYPES: dict[type[Any], RecordType] = {
    User: RecordType.USER,
    Team: RecordType.TEAM,
    BusinessUnit: RecordType.BUSINESS_UNIT,
    SecurityRole: RecordType.ROLE,
    Queue: RecordType.QUEUE,
}


def directory_type(entry: DirectoryEntry) -> RecordType:
    return _DIRECTORY_TYPES[type(entry)]


def _unit_of(entry: DirectoryEntry) -> uuid.UUID | None:
    if isinstance(entry, BusinessUnit):
        return entry.id
    if isinstance(entry, SecurityRole):
        return None
    return entry.business_unit_id


def _is_own(principal: Principal, entry: DirectoryEntry) -> bool:
    if isinstance(entry, User):
        return entry.id == principal.user_id
    if isinstance(entry, Team):
        return entry.id in principal.team_ids
    if isinstance(entry, Queue):
        return entry.owner_id == principal.user_id
    return False


def covers_entry(principal: Principal, privilege: Privilege, entry: DirectoryEntry) -> bool:
    """Whether the principal's depth for ``privilege`` on the entry's type reaches it."""
    if entry.organisation_id != principal.organisation_id:
        return False
    depth = principal.depth(directory_type(entry), privilege)
    if depth is None:
        return False
    if depth is Depth.ORGANISATION:
        return True
    if isinstance(entry, SecurityRole):
        return False  # a role is the whole organisation's
    if depth is Depth.BUSINESS_UNIT:
        return _unit_of(entry) == principal.business_unit_id
    return _is_own(principal, entry)


def require_entry(principal: Principal, privilege: Privilege, entry: DirectoryEntry) -> None:
    """Raise Forbidden unless the principal may act on the directory entry.

    Directory entries are readable by everyone in the organisation, so refusing does not
    leak their existence: Forbidden, not NotFound.
    """
    if not covers_entry(principal, privilege, entry):
        kind = directory_type(entry).value.replace("_", " ")
        raise Forbidden(
            f"You may not {privilege.value.replace('_', ' ')} this {kind}",
            privilege=privilege.value,
        )


def require_in_unit(
    principal: Principal, record_type: RecordType, privilege: Privilege, unit_id: uuid.UUID
) -> None:
    """Raise unless the principal may create (or move) a ``record_type`` into the unit."""
    depth = require_type_privilege(principal, record_type, privilege)
    if depth is Depth.ORGANISATION:
        return
    if depth is Depth.BUSINESS_UNIT and unit_id == principal.business_unit_id:
        return
    raise Forbidden(
        f"Your {privilege.value} privilege on {record_type.value} does not reach that "
        "business unit",
        privilege=privilege.value,
    )


def missing_grants(principal: Principal, grants: Grants) -> list[str]:
    """What of ``grants`` the principal does not hold, e.g. ``['user:write@organisation']``."""
    missing = []
    for (record_type, privilege), depth in sorted(grants.items()):
        held = principal.depth(record_type, privilege)
        if held is None or held.rank < depth.rank:
            missing.append(f"{record_type.value}:{privilege.value}@{depth.value}")
    return missing


def require_grantable(principal: Principal, grants: Grants) -> None:
    """Raise unless the principal holds every privilege in ``grants`` at least as deep.

    Nobody hands out — to a user, a team or a role — a privilege they do not hold
    themselves, so no chain of grants ever rises above the one who started it.
    """
    missing = missing_grants(principal, grants)
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise Forbidden(f"You cannot grant privileges you do not hold: {shown}", privilege="assign")


def require_dominates(principal: Principal, grants: Grants, whom: str) -> None:
    """Raise unless the principal holds at least what ``whom`` holds.

    Changing a user or team that holds more than you (their roles, their password, their
    business unit) is how a lesser administrator would take over a greater one.
    """
    if missing_grants(principal, grants):
        raise Forbidden(
            f"{whom} holds privileges you do not hold; only an administrator with at "
            "least as much may change it",
            privilege="write",
        )
