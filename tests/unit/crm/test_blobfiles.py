"""Blob files: written once, atomically, by any number of writers at once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.crm.blobfiles import (
    STAGING,
    blob_path,
    digest,
    discard_staged,
    publish_staged,
    stage_blob,
    sweep_staging,
    write_blob,
)
from crmsync.crm.blobs import BlobStore
from crmsync.crm.models import Blob
from crmsync.crm.store import Store


def test_writers_of_the_same_bytes_leave_one_whole_file(tmp_path: Path) -> None:
    data = b"x" * 3_000_000
    results: list[str] = []
    writers = [
        threading.Thread(target=lambda: results.append(write_blob(tmp_path, data)))
        for _ in range(8)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert set(results) == {digest(data)}
    assert blob_path(tmp_path, digest(data)).read_bytes() == data
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest(data)]


@settings(max_examples=30)
@given(payloads=st.lists(st.binary(max_size=2000), max_size=8))
def test_what_is_written_is_what_is_read(payloads: list[bytes]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        for data in payloads:
            assert blob_path(Path(root), write_blob(Path(root), data)).read_bytes() == data


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("crmsync.crm.blobfiles.os.write", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_blob(tmp_path, b"payload")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_batch_is_recorded_once_whatever_was_there(store: Store, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    with store.transaction() as session:
        first = blobs.put_many(session, [b"a", b"b", b"a"])
    with store.transaction() as session:
        write_blob(blobs.root, b"c")
        blobs.sync()
        blobs.record(session, {digest(b"b"): 1, digest(b"c"): 1})
    with store.transaction() as session:
        rows = {row.sha256: row.size for row in session.query(Blob)}
    assert first == [digest(b"a"), digest(b"b"), digest(b"a")]
    assert rows == {digest(b"a"): 1, digest(b"b"): 1, digest(b"c"): 1}


def test_staged_files_are_published_or_discarded_never_lost(tmp_path: Path) -> None:
    kept, dropped, again = (stage_blob(tmp_path, b"quote.pdf") for _ in range(3))
    publish_staged(tmp_path, kept, digest(b"quote.pdf"))
    publish_staged(tmp_path, again, digest(b"quote.pdf"))  # the same bytes twice: one blob
    discard_staged(tmp_path, [kept, dropped, again])
    assert blob_path(tmp_path, digest(b"quote.pdf")).read_bytes() == b"quote.pdf"
    assert list((tmp_path / STAGING).iterdir()) == []


def test_only_stale_staged_files_are_swept(tmp_path: Path) -> None:
    stale, fresh = stage_blob(tmp_path, b"old"), stage_blob(tmp_path, b"new")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / STAGING / stale, (two_hours_ago, two_hours_ago))
    assert sweep_staging(tmp_path) == 1
    assert [p.name for p in (tmp_path / STAGING).iterdir()] == [fresh]
    assert sweep_staging(tmp_path / "never-used") == 0


def test_blobs_of_the_two_level_layout_are_moved_not_lost(store: Store, tmp_path: Path) -> None:
    old = tmp_path / "blobs" / digest(b"kept")[:2] / digest(b"kept")[2:4] / digest(b"kept")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"kept")
    (old.parent / ".tmp-left-by-a-crash").write_bytes(b"partial")
    moved = Store(store.database_url, tmp_path / "blobs")
    try:
        moved.migrate()
        moved.migrate()  # idempotent
    finally:
        moved.dispose()
    assert blob_path(tmp_path / "blobs", digest(b"kept")).read_bytes() == b"kept"
    assert not old.parent.exists()
