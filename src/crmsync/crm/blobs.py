"""Content-addressed storage of raw messages and attachments.

Bytes live in files named by their SHA-256 (blobfiles.py: ``root/ab/cd/<sha256>``,
written atomically); the ``blobs`` table records which exist. Writing the same bytes
twice stores them once. The row is added in the caller's transaction, after the file is
durable, and a file without a row (a crash between the two) is harmless and reused by
the next write of the same bytes.

Batches (the incoming engine) write their files first — possibly from parser
processes, which stage attachments for the engine to ``publish`` — then make them
durable with one ``sync()`` before the commit and add the rows with ``record()``;
``put_many`` does all three. ``put`` is the single-blob path.

Never deletes: a blob may be shared by many emails, and the raw bytes are what lets
anything be re-processed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.crm.blobfiles import (
    blob_path,
    fsync_blob,
    publish_staged,
    sync_filesystem,
    write_blob,
)
from crmsync.crm.db import insert_ignoring_duplicates
from crmsync.crm.models.activities import Blob

_LOOKUP_CHUNK = 500  # digests per IN (...) query


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def put(self, session: Session, data: bytes) -> str:
        """Store ``data`` durably (if new), record it, and return its SHA-256 hex digest."""
        sha256 = write_blob(self.root, data)
        fsync_blob(self.root, sha256)
        if session.get(Blob, sha256) is None:
            session.add(Blob(sha256=sha256, size=len(data)))
        return sha256

    def publish(self, staged_name: str, sha256: str) -> None:
        """Move a file a parser process staged into place (blobfiles.py), not yet durable."""
        publish_staged(self.root, staged_name, sha256)

    def sync(self) -> None:
        """Make every file written so far durable (one syncfs for a whole batch)."""
        sync_filesystem(self.root)

    def record(self, session: Session, sizes: Mapping[str, int]) -> None:
        """Add the ``blobs`` rows that are missing for these durable files (digest → size)."""
        keys = list(sizes)
        known: set[str] = set()
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            known.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(chunk))))
        new = [{"sha256": sha, "size": sizes[sha]} for sha in keys if sha not in known]
        insert_ignoring_duplicates(session, Blob, new)

    def put_many(self, session: Session, items: list[bytes]) -> list[str]:
        """Store many blobs with one filesystem sync instead of one fsync per file."""
        digests = [write_blob(self.root, data) for data in items]
        if items:
            self.sync()
        self.record(session, {sha: len(data) for sha, data in zip(digests, items, strict=True)})
        return digests

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
