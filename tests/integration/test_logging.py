"""The lines an operator reads after real passes against Dovecot and the SMTP relay: one
per pass per mailbox with its counts, one per email sent or failed with its codes, and
never a password, a subject, a body or the recipients' addresses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.core.types import Channel
from crmsync.crm import mailboxes
from crmsync.crm.models import Mailbox
from crmsync.crm.settings import TrackingPreferences
from crmsync.sync.incoming import sync_incoming
from tests.integration.conftest import Connected, message
from tests.integration.test_outgoing import Outbox, make_outbox
from tests.servers import SmtpFault, SmtpStage

pytestmark = pytest.mark.integration

SUBJECT = "Quarterly figures for Fabrikam"
BODY = "The confidential numbers are 4711 and 0815."
ALL = TrackingPreferences(track_scope="all")


def _said(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the records say: messages and every extra field."""
    return "\n".join(
        f"{record.getMessage()} {sorted(map(str, record.__dict__.values()))}"
        for record in caplog.records
    )


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "event", None) == event]


def test_an_incoming_pass_is_one_line_with_its_counts(
    connected: Connected, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crmsync")
    mailbox_id = connected.add_mailbox("grace", preferences=ALL)
    grace = connected.users["grace"]
    for number in (1, 2):
        connected.deliver(["grace"], message(subject=f"{SUBJECT} {number}", body=BODY))
    connected.sync("grace")

    (line,) = [r for r in _events(caplog, "incoming_pass") if r.mailbox_id == str(mailbox_id)]
    assert line.levelno == logging.INFO
    assert (line.fetched, line.tracked, line.failed, line.error_code) == (2, 2, 0, None)
    assert (line.mailbox, line.where, line.protocol) == (grace.address, "INBOX", "imap")
    assert line.getMessage().startswith(f"{grace.address} INBOX: 2 fetched, 2 tracked, 0 failed")
    said = _said(caplog)
    for secret in (SUBJECT, "4711", grace.password):
        assert secret not in said


def test_a_failing_pass_is_a_warning_with_the_error_code(
    connected: Connected, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox_id = connected.add_mailbox("grace", preferences=ALL)
    with connected.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        values = {"password": "changed-behind-our-back"}
        mailboxes.update_mailbox(session, connected.admin(), mailbox, values, connected.box)
        # As if the password had changed on the server since Test & Enable.
        mailbox.channel(Channel.INCOMING).enabled = True
    caplog.set_level(logging.INFO, logger="crmsync")

    report = sync_incoming(connected.store, connected.box, mailbox_id)
    assert report.error is not None

    (line,) = _events(caplog, "incoming_pass")
    assert line.levelno == logging.WARNING
    assert line.error_code == report.error.code.value == "AUTH_FAILED"
    assert line.getMessage().endswith(", error AUTH_FAILED")
    assert "changed-behind-our-back" not in _said(caplog)


def test_sync_once_writes_the_pass_line_as_json(connected: Connected, tmp_path: Path) -> None:
    connected.add_mailbox("grace", preferences=ALL)
    grace = connected.users["grace"]
    connected.deliver(["grace"], message(subject=SUBJECT, body=BODY))
    env = {
        "CRMSYNC_DATABASE_URL": connected.store.database_url,
        "CRMSYNC_BLOB_DIR": str(connected.store.blobs.root),
        "CRMSYNC_SECRET_KEY": connected.secret_key,
        "CRMSYNC_DATA_DIR": str(tmp_path),
        "CRMSYNC_LOG_FORMAT": "json",
    }
    synced = CliRunner().invoke(app, ["sync", "once", "--mailbox", grace.address], env=env)
    assert synced.exit_code == 0, synced.output
    lines = [json.loads(line) for line in synced.stderr.splitlines() if line.startswith("{")]
    (line,) = [line for line in lines if line.get("event") == "incoming_pass"]
    assert (line["level"], line["mailbox"], line["fetched"], line["tracked"]) == (
        "INFO",
        grace.address,
        1,
        1,
    )
    assert SUBJECT not in synced.stderr
    # The command leaves no handler behind it.
    assert not logging.getLogger("crmsync").handlers


def test_each_email_sent_or_refused_is_one_line_with_its_codes(
    connected: Connected, caplog: pytest.LogCaptureFixture
) -> None:
    outbox: Outbox = make_outbox(connected)
    caplog.set_level(logging.DEBUG, logger="crmsync")
    sent_id = outbox.email("Your quote for 200 seats")
    outbox.queue(sent_id)
    assert outbox.send().sent == 1

    (sent,) = _events(caplog, "email_sent")
    assert sent.levelno == logging.INFO
    assert (sent.email_id, sent.mailbox, sent.outcome) == (str(sent_id), outbox.ann.address, "sent")
    assert (sent.smtp_reply, sent.recipients, sent.error_code) == (250, 1, None)
    (passed,) = _events(caplog, "outgoing_pass")
    assert (passed.sent, passed.failed, passed.error_code) == (1, 0, None)

    connected.smtp.set_faults([SmtpFault(SmtpStage.RCPT, 550, "5.1.1 Mailbox unavailable")])
    refused_id = outbox.email("Your second quote")
    outbox.queue(refused_id)
    assert outbox.send().failed == 1
    (refused,) = _events(caplog, "email_not_sent")
    assert refused.levelno == logging.WARNING
    assert (refused.email_id, refused.outcome, refused.error_code, refused.smtp_reply) == (
        str(refused_id),
        "failed",
        "RECIPIENT_REJECTED",
        550,
    )
    assert refused.getMessage() == (
        f"email {refused_id} from {outbox.ann.address}: failed, RECIPIENT_REJECTED, "
        "SMTP 550, 1 recipient"
    )

    said = _said(caplog)
    for secret in ("Your quote", "Your second quote", "Hello Bob", "Mailbox unavailable"):
        assert secret not in said
    assert outbox.bob.address not in said
    assert outbox.ann.password not in said
