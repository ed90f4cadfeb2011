"""The record store as one object: engine, session factory, blob store.

Built once from ``Settings`` at the outermost layer and passed in. Creating it opens no
connection; ``migrate()`` brings the schema to the newest Alembic revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from crmsync.config import Settings
from crmsync.crm.addresses import install_address_index
from crmsync.crm.blobfiles import upgrade_layout
from crmsync.crm.blobs import BlobStore
from crmsync.crm.db import make_engine, make_session_factory, transaction


def migrations_dir() -> Path:
    """Alembic scripts: packaged inside a built wheel, at the repository root otherwise."""
    packaged = Path(__file__).resolve().parents[1] / "migrations"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "migrations"


class Store:
    def __init__(self, database_url: str, blob_dir: Path) -> None:
        self.database_url = database_url
        self.engine: Engine = make_engine(database_url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        install_address_index(Session)
        self.blobs = BlobStore(blob_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url(), settings.resolved_blob_dir())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(migrations_dir()))
        config.attributes["engine"] = self.engine
        return config

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema — and the blob store's file layout — up to date."""
        command.upgrade(self.alembic_config(), revision)
        upgrade_layout(self.blobs.root)

    def is_initialised(self) -> bool:
        return inspect(self.engine).has_table("organisations")

    def dispose(self) -> None:
        self.engine.dispose()
