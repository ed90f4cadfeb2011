"""Content-addressed storage of raw messages and attachments.

Bytes live in files named by their SHA-256 under ``root/ab/cd/<sha256>``; the ``blobs``
table records which exist. Writing the same bytes twice stores them once. A file is
written to a temporary name, fsynced and renamed, so a crash never leaves a truncated
blob under a real name; the row is added in the caller's transaction, and a file without
a row (a crash between the two) is harmless and reused by the next put.

Never deletes: a blob may be shared by many emails, and the raw bytes are what lets
anything be re-processed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from crmsync.crm.models.activities import Blob


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, session: Session, data: bytes) -> str:
        """Store ``data`` (if new) and return its SHA-256 hex digest."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        if session.get(Blob, sha256) is None:
            session.add(Blob(sha256=sha256, size=len(data)))
        return sha256

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
