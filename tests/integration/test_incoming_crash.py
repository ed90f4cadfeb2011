"""Killing the sync worker at an arbitrary point loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from crmsync.crm.models import Email, EmailKey, MailboxMessage
from crmsync.crm.settings import TrackingPreferences
from tests.integration.conftest import Connected, message

MESSAGES = 120


def _count(connected: Connected, column: object) -> int:
    with connected.store.transaction() as session:
        return int(session.scalar(select(func.count(column))) or 0)  # type: ignore[arg-type]


def test_a_worker_killed_mid_batch_is_resumed_exactly_once(
    connected: Connected, tmp_path: Path
) -> None:
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="all"))
    for number in range(MESSAGES):
        connected.deliver(
            ["ann"], message(subject=f"message {number}", message_id=f"<m{number}@fabrikam.test>")
        )
    env = {
        **os.environ,
        "CRMSYNC_DATABASE_URL": connected.store.database_url,
        "CRMSYNC_BLOB_DIR": str(connected.store.blobs.root),
        "CRMSYNC_SECRET_KEY": connected.secret_key,
        "CRMSYNC_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "crmsync", "sync", "once", "--batch", "7"]
    worker = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while _count(connected, MailboxMessage.id) < 15 and time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(worker.communicate()[0].decode(errors="replace"))
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)  # mid-batch: no cleanup, no lease release
    worker.wait(timeout=10)
    partial = _count(connected, MailboxMessage.id)
    assert 0 < partial < MESSAGES

    # The dead worker's lease is taken over at once: the restart resumes right away.
    finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stdout.decode(errors="replace")

    assert _count(connected, MailboxMessage.id) == MESSAGES
    assert _count(connected, EmailKey.key) == MESSAGES
    assert _count(connected, Email.id) == MESSAGES
    with connected.store.transaction() as session:
        ids = list(session.scalars(select(Email.message_id)))
    assert sorted(ids) == sorted(f"<m{n}@fabrikam.test>" for n in range(MESSAGES))
