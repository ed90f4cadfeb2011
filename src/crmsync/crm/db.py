"""Engines, sessions and the declarative base.

SQLite is opened in WAL mode with foreign keys enforced and a busy timeout, so the
embedded single-process setup behaves like a real database under concurrent readers.
PostgreSQL is used through psycopg 3 when the URL names it.

Helpers take a ``Session`` as an argument and flush; only the outermost layer (a request,
a CLI command, a sync unit of work) commits. Never hold a transaction across network I/O.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event, update
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC.

    SQLite has no time zones: values come back naive. This type refuses naive input and
    always hands back aware UTC datetimes, so comparisons never mix the two kinds.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; crmsync stores aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def update_rows(session: Session, table: Table, *where: Any, **values: Any) -> int:
    """``UPDATE table SET values WHERE where``, bypassing the ORM; how many rows changed."""
    result = session.execute(
        update(table).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def insert_ignoring_duplicates(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk INSERT that skips rows whose key exists (ON CONFLICT DO NOTHING).

    For content-addressed rows, where two workers storing the same bytes is expected
    and harmless. Both SQLite and PostgreSQL support the clause; the statement is built
    with the session's dialect.
    """
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql.insert(model).on_conflict_do_nothing(), rows)
    else:
        session.execute(sqlite.insert(model).on_conflict_do_nothing(), rows)


def table_of(model: Any) -> Table:
    """A mapped class's Table, for Core bulk statements (typed: ``__table__`` is not)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def db_enum(enum_class: type[enum.Enum], length: int = 32) -> SAEnum:
    """A portable string column for an Enum: stores values, no native DB enum type."""

    def values(members: Any) -> list[str]:
        return [str(member.value) for member in members]

    return SAEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=values,
        validate_strings=True,
    )
