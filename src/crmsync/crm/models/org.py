"""Who is who: organisation, business units, users, teams, security roles, queues, tokens.

A user belongs to one business unit; rights come from security roles assigned to the user
directly or to one of the user's teams. A role privilege grants one action on one record
type at a depth (the user's own records, the business unit's, the organisation's).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crmsync.core.types import Depth, Privilege, RecordType, TokenKind
from crmsync.crm.db import Base, IdMixin, TimestampMixin, db_enum

team_members = Table(
    "team_members",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("security_roles.id", ondelete="CASCADE"), primary_key=True),
)

team_roles = Table(
    "team_roles",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("security_roles.id", ondelete="CASCADE"), primary_key=True),
)


class Organisation(IdMixin, TimestampMixin, Base):
    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Validated by crmsync.crm.settings.OrganisationSettings; JSON so new settings need
    # no migration.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BusinessUnit(IdMixin, TimestampMixin, Base):
    __tablename__ = "business_units"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("business_units.id"))
    name: Mapped[str] = mapped_column(String(200))


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    # Usernames are unique within an organisation, not across the instance, so one
    # organisation never learns another's usernames from a conflict.
    __table_args__ = (UniqueConstraint("organisation_id", "username"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    business_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("business_units.id"))
    username: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # crmsync.crm.settings.TrackingPreferences, as JSON.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    addresses: Mapped[list[UserAddress]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="UserAddress.position",
        lazy="selectin",
    )
    roles: Mapped[list[SecurityRole]] = relationship(secondary=user_roles, lazy="selectin")
    teams: Mapped[list[Team]] = relationship(
        secondary=team_members, back_populates="members", lazy="selectin"
    )

    @property
    def email_addresses(self) -> list[str]:
        return [entry.address for entry in self.addresses]

    @property
    def role_ids(self) -> list[uuid.UUID]:
        return [role.id for role in self.roles]


class UserAddress(IdMixin, Base):
    """One of a user's email addresses; position 0 is the primary one."""

    __tablename__ = "user_addresses"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    address: Mapped[str] = mapped_column(String(320))

    user: Mapped[User] = relationship(back_populates="addresses")


class Team(IdMixin, TimestampMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    business_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("business_units.id"))
    name: Mapped[str] = mapped_column(String(200))

    members: Mapped[list[User]] = relationship(
        secondary=team_members, back_populates="teams", lazy="selectin"
    )
    roles: Mapped[list[SecurityRole]] = relationship(secondary=team_roles, lazy="selectin")

    @property
    def member_ids(self) -> list[uuid.UUID]:
        return [member.id for member in self.members]

    @property
    def role_ids(self) -> list[uuid.UUID]:
        return [role.id for role in self.roles]


class SecurityRole(IdMixin, TimestampMixin, Base):
    __tablename__ = "security_roles"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # The built-in System Administrator role: it grants every privilege at organisation
    # depth (whatever its rows say, so record types added later are covered too), and
    # nobody can edit it.
    is_system: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    privileges: Mapped[list[RolePrivilege]] = relationship(
        back_populates="role", cascade="all, delete-orphan", lazy="selectin"
    )


class RolePrivilege(IdMixin, Base):
    __tablename__ = "role_privileges"
    __table_args__ = (UniqueConstraint("role_id", "record_type", "privilege"),)

    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_roles.id", ondelete="CASCADE"), index=True
    )
    record_type: Mapped[RecordType] = mapped_column(db_enum(RecordType))
    privilege: Mapped[Privilege] = mapped_column(db_enum(Privilege))
    depth: Mapped[Depth] = mapped_column(db_enum(Depth))

    role: Mapped[SecurityRole] = relationship(back_populates="privileges")


class Queue(IdMixin, TimestampMixin, Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    business_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("business_units.id"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # crmsync.crm.settings.TrackingPreferences, as JSON.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiToken(IdMixin, TimestampMixin, Base):
    """A per-user API token or a web login session. Only the token's SHA-256 is stored.

    Tokens are 256 random bits, so a fast hash is enough: nobody can brute-force the
    preimage, and lookups stay one indexed equality.
    """

    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TokenKind] = mapped_column(db_enum(TokenKind), default=TokenKind.API)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed logins counted per key: one row per account and one per client address.

    ``key`` is a SHA-256 of what it counts (``account:<organisation>:<username>`` or
    ``address:<ip>``), so neither usernames tried nor client addresses are kept in clear.
    Rows exist for usernames that do not exist too: the throttle must not tell them apart.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    locked_until: Mapped[datetime | None] = mapped_column()
