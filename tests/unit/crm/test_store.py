"""Schema, blobs and cursors: the plumbing every record relies on."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import inspect

from crmsync.crm.blobs import BlobStore
from crmsync.crm.models import Base, Blob
from crmsync.crm.pagination import InvalidCursor, decode_cursor, encode_cursor
from crmsync.crm.store import Store


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def schema_of(store: Store) -> dict[str, dict[str, Any]]:
    """What the database says it holds, table by table: columns (type as the dialect
    names it, nullability, default), primary key, indexes, unique constraints, foreign
    keys and check constraints — plus the revision Alembic recorded."""
    inspector = inspect(store.engine)  # a fresh inspector: they cache what they read
    dialect = store.engine.dialect
    schema: dict[str, dict[str, Any]] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], c["type"].compile(dialect=dialect), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (
                    f["name"],
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    tuple(sorted(f.get("options", {}).items())),
                )
                for f in inspector.get_foreign_keys(table)
            ),
            "checks": sorted(
                (c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)
            ),
        }
    with store.engine.connect() as connection:
        schema["alembic_version"]["revision"] = MigrationContext.configure(
            connection
        ).get_current_revision()
    return schema


def test_migrating_twice_changes_nothing(empty_store: Store) -> None:
    empty_store.migrate()
    once = schema_of(empty_store)
    empty_store.migrate()
    twice = schema_of(empty_store)
    assert {"organisations", "emails", "mailboxes"} <= once.keys()
    assert once["alembic_version"]["revision"] is not None
    assert twice == once


def test_blobs_are_content_addressed_and_stored_once(store: Store, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = b"From: a@b.test\r\n\r\nhello\r\n"
    with store.transaction() as session:
        first = blobs.put(session, data)
        second = blobs.put(session, data)
    assert first == second
    assert blobs.get(first) == data
    assert len(list((tmp_path / "blobs").rglob("*"))) == 2  # a shard dir and one file
    with store.transaction() as session:
        assert session.get(Blob, first).size == len(data)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="SHA-256"):
        blobs.path_for("../../etc/passwd")


def test_a_blob_file_left_by_a_crash_is_reused(store: Store, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with store.transaction() as session:
        sha = blobs.put(session, b"payload")
        session.rollback()  # the row is gone, the file stays
    with store.transaction() as session:
        assert blobs.put(session, b"payload") == sha
    with store.transaction() as session:
        assert session.get(Blob, sha) is not None


moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moment=moments, row_id=st.uuids())
def test_cursors_round_trip(moment: datetime, row_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(moment, row_id)) == (moment, row_id)


@given(garbage=st.text(max_size=80))
def test_foreign_cursors_are_refused_cleanly(garbage: str) -> None:
    try:
        moment, _ = decode_cursor(garbage)
    except InvalidCursor:
        return
    assert moment.tzinfo is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
extreme_times = st.sampled_from(
    ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2024-01-01T00:00:00+00:00"]
)


def _encoded(value: object) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(value=json_values | st.tuples(extreme_times, json_values).map(list))
def test_cursors_of_any_json_shape_are_refused_cleanly(value: object) -> None:
    """A client can base64 any JSON: ["2024-01-01T00:00:00+00:00", 5] once raised an
    AttributeError, and times at the edges of the calendar an OverflowError."""
    try:
        moment, _ = decode_cursor(_encoded(value))
    except InvalidCursor:
        return
    assert moment.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(store: Store) -> None:
    from crmsync.crm.db import UTCDateTime

    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), store.engine.dialect)
    aware = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(hours=1)
    assert UTCDateTime().process_bind_param(aware, store.engine.dialect) == aware
