"""Throwaway databases on the machine's PostgreSQL for tests that need the real thing.

What it is for: ``fresh_database()`` creates a uniquely named database, yields its
SQLAlchemy URL, and drops it afterwards (connections are terminated first, so a test
that leaked a connection cannot keep the database alive). The admin connection comes
from ``CRMSYNC_TEST_PG_URL`` (read when called, never at import) or defaults to
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` (trust auth on loopback).

What it must never do: drop or alter a database it did not create in the same call;
every name it creates starts with ``crmsync_test_`` and carries random hex.

    with fresh_database() as url:   # 'postgresql+psycopg://postgres@127.0.0.1:5432/crmsync_test_1a2b..'
        engine = sqlalchemy.create_engine(url)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_ENV = "CRMSYNC_TEST_PG_URL"
NAME_PREFIX = "crmsync_test_"


def admin_url() -> URL:
    return make_url(os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL)


def _connect(url: URL) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or None,
        dbname=url.database or "postgres",
        autocommit=True,
        connect_timeout=10,
    )


def database_exists(name: str, url: URL | None = None) -> bool:
    with _connect(url or admin_url()) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def drop_database(name: str, url: URL | None = None) -> None:
    """Terminate the database's connections and drop it (if it exists)."""
    if not name.startswith(NAME_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not created by fresh_database()")
    with _connect(url or admin_url()) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def fresh_database(url: str | None = None) -> Iterator[str]:
    """Create ``crmsync_test_<hex>``, yield its SQLAlchemy URL, drop it on exit."""
    admin = make_url(url) if url else admin_url()
    name = f"{NAME_PREFIX}{secrets.token_hex(6)}"
    with _connect(admin) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(name, admin)
