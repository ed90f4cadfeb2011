"""Alembic environment: runs migrations on the engine crmsync hands over.

``crmsync db upgrade`` (and ``Store.migrate``) pass their engine in ``config.attributes``;
the bare ``alembic`` command builds one from crmsync's settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from crmsync.config import load_settings
from crmsync.crm.db import make_engine
from crmsync.crm.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    return make_engine(load_settings().resolved_database_url())


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by copy-and-drop; with foreign keys enforced the
            # drop would cascade and delete dependent rows. The pragma only takes effect
            # outside a transaction, hence before begin_transaction().
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


run_migrations_online()
