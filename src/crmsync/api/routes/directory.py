"""Users, business units, teams and security roles."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response

from crmsync.api.deps import CurrentPrincipal, CurrentUser, SessionDep, token_from
from crmsync.api.schemas import org as schemas
from crmsync.core.types import Depth, Privilege, RecordType
from crmsync.crm import directory, passwords
from crmsync.crm.access import Principal
from crmsync.crm.models.org import BusinessUnit, SecurityRole, Team, User
from crmsync.crm.setup import root_business_unit

router = APIRouter()


def _unit_or_root(
    session: SessionDep, principal: Principal, unit_id: uuid.UUID | None
) -> uuid.UUID:
    return unit_id or root_business_unit(session, principal.organisation_id).id


def _grants(
    privileges: Sequence[schemas.PrivilegeGrant],
) -> list[tuple[RecordType, Privilege, Depth]]:
    return [(grant.record_type, grant.privilege, grant.depth) for grant in privileges]


@router.get("/users/me", response_model=schemas.UserPublic, tags=["users"])
def me(user: CurrentUser) -> User:
    return user


@router.get("/users", response_model=list[schemas.UserPublic], tags=["users"])
def list_users(session: SessionDep, principal: CurrentPrincipal) -> Sequence[User]:
    return directory.list_in_org(session, principal, User)


@router.post("/users", response_model=schemas.UserPublic, status_code=201, tags=["users"])
def create_user(body: schemas.UserCreate, session: SessionDep, principal: CurrentPrincipal) -> User:
    return directory.create_user(
        session,
        principal,
        username=body.username,
        full_name=body.full_name,
        business_unit_id=_unit_or_root(session, principal, body.business_unit_id),
        email_addresses=body.email_addresses,
        password=body.password.get_secret_value() if body.password else None,
        role_ids=body.role_ids,
    )


@router.get("/users/{user_id:uuid}", response_model=schemas.UserPublic, tags=["users"])
def get_user(user_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> User:
    return directory.get_in_org(session, principal, User, user_id)


@router.patch("/users/{user_id:uuid}", response_model=schemas.UserPublic, tags=["users"])
def update_user(
    user_id: uuid.UUID, body: schemas.UserUpdate, session: SessionDep, principal: CurrentPrincipal
) -> User:
    user = directory.get_in_org(session, principal, User, user_id)
    return directory.update_user(session, principal, user, body.model_dump(exclude_unset=True))


@router.post("/users/me/password", status_code=204, tags=["users"])
def change_own_password(
    body: schemas.PasswordChange, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Change your password; your other login sessions end, this one stays."""
    passwords.change_own_password(
        session,
        user,
        current=body.current_password.get_secret_value(),
        new=body.new_password.get_secret_value(),
        keep_token=token_from(request),
    )
    return Response(status_code=204)


@router.put("/users/{user_id:uuid}/password", status_code=204, tags=["users"])
def reset_password(
    user_id: uuid.UUID,
    body: schemas.PasswordReset,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Response:
    """Set another user's password (an administrator over them); their sessions end."""
    user = directory.get_in_org(session, principal, User, user_id)
    new = body.password.get_secret_value() if body.password is not None else None
    passwords.reset_password(session, principal, user, new=new)
    return Response(status_code=204)


@router.get(
    "/business-units", response_model=list[schemas.BusinessUnitPublic], tags=["business units"]
)
def list_business_units(session: SessionDep, principal: CurrentPrincipal) -> Sequence[BusinessUnit]:
    return directory.list_in_org(session, principal, BusinessUnit)


@router.post(
    "/business-units",
    response_model=schemas.BusinessUnitPublic,
    status_code=201,
    tags=["business units"],
)
def create_business_unit(
    body: schemas.BusinessUnitCreate, session: SessionDep, principal: CurrentPrincipal
) -> BusinessUnit:
    return directory.create_business_unit(
        session,
        principal,
        name=body.name,
        parent_id=_unit_or_root(session, principal, body.parent_id),
    )


@router.get("/teams", response_model=list[schemas.TeamPublic], tags=["teams"])
def list_teams(session: SessionDep, principal: CurrentPrincipal) -> Sequence[Team]:
    return directory.list_in_org(session, principal, Team)


@router.post("/teams", response_model=schemas.TeamPublic, status_code=201, tags=["teams"])
def create_team(body: schemas.TeamCreate, session: SessionDep, principal: CurrentPrincipal) -> Team:
    return directory.create_team(
        session,
        principal,
        name=body.name,
        business_unit_id=_unit_or_root(session, principal, body.business_unit_id),
        member_ids=body.member_ids,
        role_ids=body.role_ids,
    )


@router.get("/teams/{team_id}", response_model=schemas.TeamPublic, tags=["teams"])
def get_team(team_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Team:
    return directory.get_in_org(session, principal, Team, team_id)


@router.patch("/teams/{team_id}", response_model=schemas.TeamPublic, tags=["teams"])
def update_team(
    team_id: uuid.UUID, body: schemas.TeamUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Team:
    team = directory.get_in_org(session, principal, Team, team_id)
    return directory.update_team(session, principal, team, body.model_dump(exclude_unset=True))


@router.get("/roles", response_model=list[schemas.RolePublic], tags=["roles"])
def list_roles(session: SessionDep, principal: CurrentPrincipal) -> Sequence[SecurityRole]:
    return directory.list_in_org(session, principal, SecurityRole)


@router.post("/roles", response_model=schemas.RolePublic, status_code=201, tags=["roles"])
def create_role(
    body: schemas.RoleCreate, session: SessionDep, principal: CurrentPrincipal
) -> SecurityRole:
    return directory.create_role(
        session,
        principal,
        name=body.name,
        description=body.description,
        privileges=_grants(body.privileges),
    )


@router.get("/roles/{role_id}", response_model=schemas.RolePublic, tags=["roles"])
def get_role(role_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> SecurityRole:
    return directory.get_in_org(session, principal, SecurityRole, role_id)


@router.put("/roles/{role_id}/privileges", response_model=schemas.RolePublic, tags=["roles"])
def set_role_privileges(
    role_id: uuid.UUID,
    body: schemas.RolePrivilegesUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> SecurityRole:
    role = directory.get_in_org(session, principal, SecurityRole, role_id)
    return directory.set_role_privileges(session, principal, role, _grants(body.privileges))
