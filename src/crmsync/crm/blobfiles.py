"""The files of the blob store: content-addressed, written atomically, synced in bulk.

What it is for: ``BlobStore`` (blobs.py) keeps the database side (the ``blobs`` table)
and uses these functions for the files; parser processes of the incoming engine use them
directly to store the raw bytes they were handed, which is why this module imports
nothing but the standard library (a parser process starts in a tenth of a second).

Layout: ``root/ab/cd/<sha256>``. A file is written under a temporary name that is unique
to the writing thread and renamed into place, so a reader never sees a partial blob and
two writers of the same bytes never disturb each other (the rename is atomic, and both
write the same content). Files are not fsynced one by one: the writer of a batch calls
``sync_filesystem`` once, before the transaction that refers to the batch commits.

What it must never do: delete or overwrite a blob under its real name with other bytes,
or leave a temporary file behind after a failed write (a crash may; such files are
named ``.tmp-*`` and are never read).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import threading
from pathlib import Path

_HEX = frozenset("0123456789abcdef")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_path(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or not _HEX.issuperset(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return root / sha256[:2] / sha256[2:4] / sha256


def write_blob(root: Path, data: bytes, sha256: str | None = None) -> str:
    """Store ``data`` under its SHA-256 unless it is there already; return the digest.

    Not durable until ``sync_filesystem(root)`` (or an fsync) has run.
    """
    sha256 = sha256 or digest(data)
    path = blob_path(root, sha256)
    if path.exists():
        return sha256
    tmp = path.parent / f".tmp-{sha256[:16]}-{os.getpid()}-{threading.get_ident()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileNotFoundError:
        # First blob under this prefix: make the two directory levels, then write.
        # (Asking forgiveness here saves two mkdir calls per blob on the common path.)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return sha256


def fsync_blob(root: Path, sha256: str) -> None:
    """Make one blob durable (for single writes, where a whole-filesystem sync is waste)."""
    fd = os.open(blob_path(root, sha256), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = os.open(blob_path(root, sha256).parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(directory)


def sync_filesystem(root: Path) -> None:
    """syncfs(2) on the filesystem holding ``root`` (Linux); os.sync() elsewhere.

    One syncfs after writing a batch gives every file of the batch the guarantee a
    per-file fsync would, at a fraction of the cost (per-file fsync dominated ingest).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(root, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()
