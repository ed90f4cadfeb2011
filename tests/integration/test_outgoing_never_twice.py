"""Never twice: a worker that dies after the server accepted an email, but before ``sent``
was saved, never makes a restart send it again.

First the states such a crash leaves, built by hand after a real send (deterministic);
then a real ``crmsync send once`` process killed with SIGKILL the moment the relay has
delivered the first message. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from crmsync.core.types import EmailStatus
from crmsync.crm.db import utcnow
from crmsync.crm.models import Alert, Email, EmailServerProfile
from tests.integration.conftest import Connected
from tests.integration.test_outgoing import Outbox, make_outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox(connected: Connected) -> Outbox:
    return make_outbox(connected)


def _dead_worker() -> str:
    """A worker name of this host whose process has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "from crmsync.sync import leases; print(leases.worker_name())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _crash_after_accept(outbox: Outbox, email_id: uuid.UUID, claim: str, **values: object) -> None:
    """Put a sent email back in the state a crash right after the 250 leaves: sending."""
    with outbox.store.transaction() as session:
        session.execute(
            update(Email)
            .where(Email.id == email_id)
            .values(
                status=EmailStatus.SENDING,
                send_claim=claim,
                send_claimed_at=values.pop("claimed_at", utcnow()),
                copy_pending=False,
                **values,
            )
        )


def _sent_copies(outbox: Outbox, email_id: uuid.UUID) -> int:
    return len(outbox.received(outbox.bob, outbox.get(email_id).message_id))


def _no_sent_copies(outbox: Outbox) -> None:
    with outbox.store.transaction() as session:
        session.execute(update(EmailServerProfile).values(save_sent_copy=False))


def test_found_in_the_sent_folder_it_is_marked_sent_not_sent_again(outbox: Outbox) -> None:
    email_id = outbox.email()
    outbox.queue(email_id)
    assert outbox.send().copies == 1
    _crash_after_accept(outbox, email_id, _dead_worker())

    report = outbox.send()
    assert (report.recovered, report.sent, report.uncertain) == (1, 0, 0)
    assert outbox.get(email_id).status is EmailStatus.SENT
    assert _sent_copies(outbox, email_id) == 1
    assert len(outbox.folder(outbox.ann, "Sent")) == 1


def test_without_evidence_it_is_failed_as_uncertain_and_not_sent_again(outbox: Outbox) -> None:
    _no_sent_copies(outbox)  # as on a server that files nothing: no copy to find
    email_id = outbox.email()
    outbox.queue(email_id)
    assert outbox.send().sent == 1
    _crash_after_accept(outbox, email_id, _dead_worker())

    report = outbox.send()
    assert (report.uncertain, report.sent) == (1, 0)
    email = outbox.get(email_id)
    assert email.status is EmailStatus.FAILED
    assert email.send_error_code == "DELIVERY_UNCERTAIN"
    assert _sent_copies(outbox, email_id) == 1
    with outbox.store.transaction() as session:
        alert = session.scalars(select(Alert).where(Alert.code == "DELIVERY_UNCERTAIN")).one()
        assert alert.mailbox_owner_id == outbox.ann_id
    assert outbox.send().sent == 0  # and it stays that way


def test_a_live_workers_claim_is_respected_until_it_expires(outbox: Outbox) -> None:
    _no_sent_copies(outbox)
    email_id = outbox.email()
    outbox.queue(email_id)
    outbox.send()
    _crash_after_accept(outbox, email_id, "another-host:4242:1")
    report = outbox.send()
    assert (report.recovered, report.uncertain, report.sent) == (0, 0, 0)
    assert outbox.get(email_id).status is EmailStatus.SENDING  # someone else's, still

    _crash_after_accept(
        outbox, email_id, "another-host:4242:1", claimed_at=utcnow() - timedelta(minutes=11)
    )
    assert outbox.send().uncertain == 1
    assert _sent_copies(outbox, email_id) == 1


def test_a_retry_after_a_broken_connection_looks_in_sent_first(outbox: Outbox) -> None:
    email_id = outbox.email()
    outbox.queue(email_id)
    outbox.send()
    # As if the connection broke after DATA: a retry marked "maybe sent".
    with outbox.store.transaction() as session:
        session.execute(
            update(Email)
            .where(Email.id == email_id)
            .values(status=EmailStatus.PENDING_SEND, maybe_sent=True, send_claim=None)
        )
    report = outbox.send()
    assert (report.recovered, report.sent) == (1, 0)
    assert outbox.get(email_id).status is EmailStatus.SENT
    assert _sent_copies(outbox, email_id) == 1


# -- a real process, really killed ---------------------------------------------------------


def _maildir_count(connected: Connected, address: str) -> int:
    home = connected.dovecot.layout.mail / address / "Maildir"
    return sum(
        1
        for sub in ("new", "cur")
        for entry in (os.scandir(home / sub) if (home / sub).is_dir() else [])
        if entry.is_file()
    )


def test_a_sender_killed_right_after_the_server_accepted_never_sends_twice(
    outbox: Outbox, connected: Connected, tmp_path: Path
) -> None:
    _no_sent_copies(outbox)  # the hard case: no copy in Sent to find afterwards
    ids = [outbox.email(f"Offer {n}") for n in range(6)]
    for email_id in ids:
        outbox.queue(email_id)
    env = {
        **os.environ,
        "CRMSYNC_DATABASE_URL": connected.store.database_url,
        "CRMSYNC_BLOB_DIR": str(connected.store.blobs.root),
        "CRMSYNC_SECRET_KEY": connected.secret_key,
        "CRMSYNC_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "crmsync", "send", "once"]
    worker = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while _maildir_count(connected, outbox.bob.address) < 1:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(worker.communicate()[0].decode(errors="replace"))
        time.sleep(0.0005)
    worker.send_signal(signal.SIGKILL)  # the relay has delivered: no cleanup, no lease release
    worker.wait(timeout=10)

    # The restart takes the dead worker's lease at once and settles what it left.
    finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stdout.decode(errors="replace")

    statuses = []
    for email_id in ids:
        email = outbox.get(email_id)
        copies = _sent_copies(outbox, email_id)
        assert copies <= 1, f"{email.subject} arrived {copies} times"
        if email.status is EmailStatus.SENT:
            assert copies == 1
        else:
            assert email.status is EmailStatus.FAILED
            assert email.send_error_code == "DELIVERY_UNCERTAIN"
        statuses.append(email.status)
    assert statuses.count(EmailStatus.SENT) >= len(ids) - 1
    assert _maildir_count(connected, outbox.bob.address) <= len(ids)
