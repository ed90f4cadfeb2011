"""First-run setup: the organisation, its root business unit, default roles, the admin.

Idempotent: running it against a database that already has the organisation changes
nothing and reports what exists. Default roles follow Dynamics' shape:

* System Administrator — every privilege on every type, organisation depth;
* Salesperson — reads customer records and activities of their business unit, creates
  and changes their own;
* Read Only — reads everything in the organisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import (
    ACTIVITY_TYPES,
    CUSTOMER_RECORD_TYPES,
    Depth,
    Privilege,
    RecordType,
)
from crmsync.crm.auth import hash_password
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models.org import (
    BusinessUnit,
    Organisation,
    RolePrivilege,
    SecurityRole,
    User,
    UserAddress,
)

SYSTEM_ADMINISTRATOR = "System Administrator"
SALESPERSON = "Salesperson"
READ_ONLY = "Read Only"


def _grants(
    types: tuple[RecordType, ...], privileges: tuple[Privilege, ...], depth: Depth
) -> list[RolePrivilege]:
    return [
        RolePrivilege(record_type=record_type, privilege=privilege, depth=depth)
        for record_type in types
        for privilege in privileges
    ]


def default_roles(organisation: Organisation) -> list[SecurityRole]:
    everything = tuple(RecordType)
    all_privileges = tuple(Privilege)
    working_types = CUSTOMER_RECORD_TYPES + ACTIVITY_TYPES
    own = (
        Privilege.CREATE,
        Privilege.WRITE,
        Privilege.DELETE,
        Privilege.APPEND,
        Privilege.APPEND_TO,
        Privilege.ASSIGN,
    )
    return [
        SecurityRole(
            organisation_id=organisation.id,
            name=SYSTEM_ADMINISTRATOR,
            description="Every privilege on every record type in the organisation.",
            is_system=True,
            privileges=_grants(everything, all_privileges, Depth.ORGANISATION),
        ),
        SecurityRole(
            organisation_id=organisation.id,
            name=SALESPERSON,
            description="Reads the business unit's customers and activities; works on own.",
            privileges=_grants(working_types, (Privilege.READ,), Depth.BUSINESS_UNIT)
            + _grants(working_types, own, Depth.USER)
            + _grants((RecordType.MAILBOX,), (Privilege.READ, Privilege.WRITE), Depth.USER),
        ),
        SecurityRole(
            organisation_id=organisation.id,
            name=READ_ONLY,
            description="Reads every customer record and activity in the organisation.",
            privileges=_grants(working_types, (Privilege.READ,), Depth.ORGANISATION),
        ),
    ]


@dataclass(frozen=True)
class SetupResult:
    organisation: Organisation
    admin: User
    created: bool


def initialise(
    session: Session,
    *,
    organisation_name: str,
    admin_username: str,
    admin_password: str,
    admin_email: str | None = None,
) -> SetupResult:
    existing = session.scalar(select(Organisation).where(Organisation.name == organisation_name))
    if existing is not None:
        admin = session.scalar(
            select(User).where(User.organisation_id == existing.id, User.username == admin_username)
        )
        if admin is None:
            raise ValueError(
                f"Organisation {organisation_name!r} exists without user {admin_username!r}"
            )
        return SetupResult(existing, admin, created=False)
    organisation = Organisation(name=organisation_name, settings={})
    session.add(organisation)
    session.flush()
    root = BusinessUnit(organisation_id=organisation.id, name=organisation_name)
    session.add(root)
    roles = default_roles(organisation)
    session.add_all(roles)
    session.flush()
    admin = User(
        organisation_id=organisation.id,
        business_unit_id=root.id,
        username=admin_username,
        full_name="Administrator",
        password_hash=hash_password(admin_password),
        addresses=[UserAddress(position=0, address=admin_email)] if admin_email else [],
        roles=[roles[0]],
    )
    session.add(admin)
    session.flush()
    create_mailbox_for(session, user=admin)
    return SetupResult(organisation, admin, created=True)


def root_business_unit(session: Session, organisation_id: object) -> BusinessUnit:
    unit = session.scalar(
        select(BusinessUnit)
        .where(BusinessUnit.organisation_id == organisation_id, BusinessUnit.parent_id.is_(None))
        .order_by(BusinessUnit.created_at)
    )
    if unit is None:
        raise LookupError("The organisation has no root business unit")
    return unit
