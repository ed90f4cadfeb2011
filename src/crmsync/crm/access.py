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

Must never be bypassed by a route, and must never do I/O beyond the database session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, inspect, or_, select, true
from sqlalchemy.orm import Session

from crmsync.crm.errors import Forbidden, NotFound
from crmsync.crm.models.activities import Activity
from crmsync.crm.models.org import User
from crmsync.crm.models.sharing import RecordShare
from crmsync.crm.types import ACTIVITY_TYPES, Depth, Privilege, RecordType

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


def load_principal(user: User) -> Principal:
    grants: Grants = {}
    roles = list(user.roles) + [role for team in user.teams for role in team.roles]
    for role in roles:
        for grant in role.privileges:
            key = (grant.record_type, grant.privilege)
            current = grants.get(key)
            if current is None or grant.depth.rank > current.rank:
                grants[key] = grant.depth
    return Principal(
        user_id=user.id,
        organisation_id=user.organisation_id,
        business_unit_id=user.business_unit_id,
        team_ids=frozenset(team.id for team in user.teams),
        grants=grants,
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
