"""Fixtures of the crm tests: an empty database, for the tests that upgrade an old one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync.crm.store import Store
from tests.conftest import BACKENDS
from tests.servers.postgres import fresh_database


@pytest.fixture(params=BACKENDS)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A database on each backend with no schema yet: migrate it to the revision to upgrade
    from, fill it as that version would have, then migrate it to the newest."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'old.sqlite3'}", tmp_path / "blobs")
        yield store
        store.dispose()
        return
    with fresh_database() as url:
        store = Store(url, tmp_path / "blobs")
        yield store
        store.dispose()
