"""Directory shapes: users, teams, business units, roles, tokens, login."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from crmsync.api.schemas.common import AS_WHOLE_NUMBER, EmailAddress, omittable
from crmsync.core.types import Depth, Privilege, RecordType, TokenKind

Name = Field(min_length=1, max_length=200)
# No white space, by every regex dialect's idea of it: ECMA's \s (what clients check) lacks
# U+0085 and U+001C-U+001F, which pydantic's engine and Python count as space.
Days = Annotated[int, Field(ge=1, le=3650), AS_WHOLE_NUMBER]
USERNAME_PATTERN = r"^[^\s\x1c-\x1f\x85]+$"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200, pattern=USERNAME_PATTERN)
    full_name: str = Field(default="", max_length=200)
    business_unit_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the organisation's root business unit."
    )
    email_addresses: list[EmailAddress] = Field(default_factory=list, max_length=20)
    password: SecretStr | None = Field(default=None, min_length=8, max_length=200)
    role_ids: list[uuid.UUID] = Field(default_factory=list)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = omittable(min_length=1, max_length=200, pattern=USERNAME_PATTERN)
    full_name: str = omittable(max_length=200)
    business_unit_id: uuid.UUID = omittable()
    email_addresses: list[EmailAddress] = omittable(max_length=20)
    is_active: bool = omittable()
    role_ids: list[uuid.UUID] = omittable()


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    full_name: str
    business_unit_id: uuid.UUID
    email_addresses: list[str]
    is_active: bool
    role_ids: list[uuid.UUID]


class PasswordChange(BaseModel):
    """Your own password: the current one proves it is you, not a stolen session."""

    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr = Field(min_length=1, max_length=200)
    new_password: SecretStr = Field(min_length=8, max_length=200)


class PasswordReset(BaseModel):
    """Another user's password, set by an administrator over them; null removes it."""

    model_config = ConfigDict(extra="forbid")

    password: SecretStr | None = Field(min_length=8, max_length=200)


class BusinessUnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    parent_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the organisation's root business unit."
    )


class BusinessUnitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    business_unit_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] = Field(default_factory=list)
    role_ids: list[uuid.UUID] = Field(default_factory=list)


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = omittable(min_length=1, max_length=200)
    member_ids: list[uuid.UUID] = omittable()
    role_ids: list[uuid.UUID] = omittable()


class TeamPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    business_unit_id: uuid.UUID
    member_ids: list[uuid.UUID]
    role_ids: list[uuid.UUID]


class PrivilegeGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    record_type: RecordType
    privilege: Privilege
    depth: Depth


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    description: str = Field(default="", max_length=2000)
    privileges: list[PrivilegeGrant] = Field(default_factory=list, max_length=500)


class RolePrivilegesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    privileges: list[PrivilegeGrant] = Field(max_length=500)


class RolePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    is_system: bool = Field(description="Built in: every privilege, not editable.")
    privileges: list[PrivilegeGrant]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: SecretStr = Field(min_length=1, max_length=200)
    organisation: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Needed only when the instance serves several organisations.",
    )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    expires_in_days: Days | None = None


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: TokenKind
    prefix: str
    created_at: AwareDatetime
    expires_at: AwareDatetime | None
    last_used_at: AwareDatetime | None
    revoked: bool


class TokenIssued(TokenPublic):
    token: str = Field(description="Shown once; store it now. Only a hash is kept.")
