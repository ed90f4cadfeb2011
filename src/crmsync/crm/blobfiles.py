"""The files of the blob store: content-addressed, written atomically, synced in bulk.

What it is for: ``BlobStore`` (blobs.py) keeps the database side (the ``blobs`` table)
and uses these functions for the files; parser processes of the incoming engine use them
directly to store the raw bytes they were handed, which is why this module imports
nothing but the standard library (a parser process starts in a tenth of a second).

Layout: ``root/ab/<sha256>`` — 256 directories, as git keeps loose objects. (A second
level, ``ab/cd/``, made nearly every blob of a young store create two directories, and
directory creation was the costliest part of storing a message; ``upgrade_layout``
moves blobs of that older layout.) A file is written under a temporary name that is unique
to the writing thread and renamed into place, so a reader never sees a partial blob and
two writers of the same bytes never disturb each other (the rename is atomic, and both
write the same content). Files are not fsynced one by one: the writer of a batch calls
``sync_filesystem`` once, before the transaction that refers to the batch commits.

Staging: a parser process does not know yet whether the email it parses will be
tracked, so it *stages* attachments — ``stage_blob`` writes them under
``root/.staging/`` with a unique name — and the engine, once it has decided,
``publish_staged`` renames the ones it keeps into place and ``discard_staged`` removes
the rest. The bytes never travel back between the processes, and untracked email leaves
no attachment files behind. Staged files older than an hour belong to no live batch
(a crash left them) and ``sweep_staging`` removes them.

What it must never do: delete or overwrite a blob under its real name with other bytes,
or leave a temporary file behind after a failed write (a crash may; such files are
named ``.tmp-*`` or live in ``.staging/``, and are never read as blobs).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

_HEX = frozenset("0123456789abcdef")
STAGING = ".staging"


def upgrade_layout(root: Path) -> int:
    """Move blobs stored as ``root/ab/cd/<sha256>`` to ``root/ab/<sha256>``; idempotent.

    Returns how many moved. A crash part-way leaves each blob in one place or the other,
    both readable by the next run of this function and never lost.
    """
    moved = 0
    if not root.is_dir():
        return 0
    for first in root.iterdir():
        if len(first.name) != 2 or not first.is_dir():
            continue
        for second in first.iterdir():
            if len(second.name) != 2 or not second.is_dir():
                continue
            for old in second.iterdir():
                if old.name.startswith(".tmp-"):
                    old.unlink(missing_ok=True)
                    continue
                os.replace(old, first / old.name)
                moved += 1
            second.rmdir()
    return moved


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_path(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or not _HEX.issuperset(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return root / sha256[:2] / sha256


def write_blob(root: Path, data: bytes, sha256: str | None = None) -> str:
    """Store ``data`` under its SHA-256 unless it is there already; return the digest.

    Not durable until ``sync_filesystem(root)`` (or an fsync) has run.
    """
    sha256 = sha256 or digest(data)
    path = blob_path(root, sha256)
    if path.exists():
        return sha256
    tmp = path.parent / f".tmp-{sha256[:16]}-{os.getpid()}-{threading.get_ident()}"
    _write_new(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (its directories made if missing); nothing left on error."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        # First file under this prefix: make the directories, then write. (Asking
        # forgiveness saves two mkdir calls per blob on the common path.)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o600)
    try:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def stage_blob(root: Path, data: bytes) -> str:
    """Write ``data`` to a staging file of its own and return the file's name."""
    name = uuid.uuid4().hex
    _write_new(root / STAGING / name, data)
    return name


def publish_staged(root: Path, name: str, sha256: str) -> None:
    """Move a staged file into place as blob ``sha256`` (which it must hold)."""
    staged = root / STAGING / name
    target = blob_path(root, sha256)
    if target.exists():
        staged.unlink(missing_ok=True)
        return
    try:
        os.replace(staged, target)
    except FileNotFoundError:
        if not staged.exists():
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def discard_staged(root: Path, names: Iterable[str]) -> None:
    """Remove staged files that were not published (those already moved are skipped)."""
    for name in names:
        (root / STAGING / name).unlink(missing_ok=True)


def sweep_staging(root: Path, older_than_seconds: float = 3600.0) -> int:
    """Remove staged files a crash left behind; returns how many."""
    cutoff = time.time() - older_than_seconds
    removed = 0
    try:
        entries = list(os.scandir(root / STAGING))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def fsync_blob(root: Path, sha256: str) -> None:
    """Make one blob durable (for single writes, where a whole-filesystem sync is waste)."""
    path = blob_path(root, sha256)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = os.open(path.parent, os.O_RDONLY)
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
