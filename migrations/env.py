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
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
