"""Shared fixtures: a migrated record store on SQLite *and* PostgreSQL for every store test.

``store`` is parametrised over both backends; each backend is migrated once per session
and emptied after every test, so tests are isolated without paying for a migration each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from crmsync.crm.access import Principal, load_principal
from crmsync.crm.models import Base, BusinessUnit, Organisation, SecurityRole, User
from crmsync.crm.setup import SALESPERSON, initialise
from crmsync.crm.store import Store
from tests.servers.postgres import fresh_database

pytest_plugins = ["tests.servers.fixtures"]

BACKENDS = ["sqlite", "postgresql"]


def sqlite_store(root: Path) -> Store:
    """A store of its own in ``root`` (an SQLite file and the blob folder), migrated."""
    store = Store(f"sqlite:///{root / 'crmsync.sqlite3'}", root / "blobs")
    store.migrate()
    return store


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    root = tmp_path_factory.mktemp(f"store-{request.param}")
    if request.param == "sqlite":
        store = sqlite_store(root)
        yield store
        store.dispose()
        return
    with fresh_database() as url:
        store = Store(url, root / "blobs")
        store.migrate()
        yield store
        store.dispose()


def _empty(store: Store) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with store.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for name in tables:
                connection.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def store(migrated_store: Store) -> Iterator[Store]:
    yield migrated_store
    _empty(migrated_store)


@dataclass
class Org:
    """An organisation with an admin and helpers to add people, for store tests."""

    store: Store
    organisation_id: uuid.UUID
    root_unit_id: uuid.UUID
    admin_id: uuid.UUID

    def principal(self, session: Session, user_id: uuid.UUID) -> Principal:
        user = session.get(User, user_id)
        assert user is not None
        return load_principal(user)

    def add_unit(self, session: Session, name: str) -> uuid.UUID:
        unit = BusinessUnit(
            organisation_id=self.organisation_id, name=name, parent_id=self.root_unit_id
        )
        session.add(unit)
        session.flush()
        return unit.id

    def add_user(
        self,
        session: Session,
        username: str,
        *,
        unit_id: uuid.UUID | None = None,
        role: str | None = SALESPERSON,
        addresses: tuple[str, ...] = (),
    ) -> uuid.UUID:
        from crmsync.crm.models import UserAddress

        roles = []
        if role:
            found = session.query(SecurityRole).filter_by(
                organisation_id=self.organisation_id, name=role
            )
            roles = [found.one()]
        user = User(
            organisation_id=self.organisation_id,
            business_unit_id=unit_id or self.root_unit_id,
            username=username,
            full_name=username.title(),
            addresses=[UserAddress(position=i, address=a) for i, a in enumerate(addresses)],
            roles=roles,
        )
        session.add(user)
        session.flush()
        return user.id


def make_org(store: Store, name: str = "Acme") -> Org:
    with store.transaction() as session:
        result = initialise(
            session,
            organisation_name=name,
            admin_username=f"admin-{name.lower()}",
            admin_password="admin-password",
            admin_email=f"admin@{name.lower()}.test",
        )
        unit = session.query(BusinessUnit).filter_by(
            organisation_id=result.organisation.id, parent_id=None
        )
        return Org(store, result.organisation.id, unit.one().id, result.admin.id)


@pytest.fixture
def org(store: Store) -> Org:
    return make_org(store)


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


__all__ = ["Org", "Organisation", "make_org"]
