"""Test & Enable: a real, step-by-step check of a mailbox against its servers.

    start  (short transaction)   a MailboxTest row, no steps yet, not finished
    gather (short transaction)   mailbox, profile, decrypted credentials → ConnectionPlan
    probe  (no transaction)      DNS → TCP → TLS → authentication → INBOX / EHLO+AUTH;
                                 each step, once finished, is appended to the row in a
                                 transaction of its own (so a page can show it running)
    record (short transaction)   channels enabled or not; alerts for what failed; the
                                 row's finished_at and ok

``check_and_enable`` does all of it; a caller that wants to show the run while it goes
calls ``start_check`` (which returns the row's id at once) and then ``run_check`` in the
background. A run whose process died stays unfinished: ``STALE_AFTER`` says when a
reader may call it abandoned.

A channel whose check passes is enabled — but only once the mailbox is approved when the
organisation processes email only for approved mailboxes; otherwise it stays disabled
with an information alert saying approval is what is missing. A failing check leaves the
channel disabled with an alert that says what to fix. No message is ever sent. A passing
incoming check also allows the folders' UIDVALIDITY re-maps again (incoming_imap.py caps
them between two checks).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crmsync.connectors.probe import (
    OnStep,
    ProbeResult,
    ProbeStep,
    probe_imap,
    probe_pop3,
    probe_smtp,
)
from crmsync.core.alerts import AlertCode
from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import Approval, Channel, IncomingMethod, Protocol, SyncMethod
from crmsync.crm.alerts import mark_channel_ok, raise_catalogued
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import Mailbox, MailboxTest
from crmsync.crm.models.org import Organisation
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import OrganisationSettings
from crmsync.crm.store import Store
from crmsync.sync.connection_plan import ConnectionPlan, plan_for
from crmsync.sync.health import record_failure
from crmsync.sync.incoming.imap import reset_uidvalidity_resyncs
from crmsync.sync.oauth_tokens import token_problem

log = logging.getLogger(__name__)

# A run not finished after this long was cut short (the process stopped): every step has
# a connection timeout far below it.
STALE_AFTER = timedelta(minutes=10)
# The steps each kind of check runs, in order (connectors/probe.py), for showing the
# ones still to come; a check stops at its first failed step.
PLANNED_STEPS: dict[str, tuple[str, ...]] = {
    "imap": ("dns", "tcp", "tls", "auth", "inbox"),
    "pop3": ("dns", "tcp", "tls", "auth", "inbox"),
    "smtp": ("dns", "tcp", "tls", "ehlo", "auth"),
}


@dataclass(frozen=True)
class ChannelOutcome:
    channel: Channel
    result: ProbeResult | None  # None when the check could not start
    error: SyncError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def channels_to_test(mailbox: Mailbox) -> list[Channel]:
    wanted = []
    if mailbox.incoming_method is IncomingMethod.SERVER_SIDE_SYNC:
        wanted.append(Channel.INCOMING)
    if mailbox.outgoing_method is SyncMethod.SERVER_SIDE_SYNC:
        wanted.append(Channel.OUTGOING)
    if mailbox.act_method is SyncMethod.SERVER_SIDE_SYNC:
        wanted.append(Channel.ACT)
    return wanted


def planned_steps(mailbox: Mailbox) -> list[tuple[Channel, str]]:
    """What a Test & Enable of ``mailbox`` would run, in order: ``[(incoming, "dns"), …]``.

    Appointments, contacts and tasks have one ``configuration`` step (no connector yet).
    """
    server_type = mailbox.profile.server_type if mailbox.profile is not None else None
    incoming = server_type.incoming_protocol if server_type is not None else "imap"
    planned: list[tuple[Channel, str]] = []
    for channel in channels_to_test(mailbox):
        if channel is Channel.ACT:
            names: tuple[str, ...] = ("configuration",)
        else:
            protocol = "smtp" if channel is Channel.OUTGOING else incoming
            names = PLANNED_STEPS.get(protocol, ("configuration",))
        planned.extend((channel, name) for name in names)
    return planned


def is_stale(run: MailboxTest, now: datetime) -> bool:
    """Whether an unfinished run was cut short rather than still going."""
    started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=now.tzinfo)
    return run.finished_at is None and now - started > STALE_AFTER


def _probe(channel: Channel, plan: ConnectionPlan, on_step: OnStep | None = None) -> ChannelOutcome:
    if channel is Channel.ACT:
        error = SyncError(
            ErrorCode.NOT_SUPPORTED,
            "appointments, contacts and tasks need a CalDAV/CardDAV or Exchange connector, "
            "which this build does not have yet",
        )
        return ChannelOutcome(channel, None, error)
    endpoint = plan.incoming if channel is Channel.INCOMING else plan.outgoing
    if endpoint is None:
        missing = SyncError(
            ErrorCode.CONFIGURATION, f"the profile has no {channel.value} server set"
        )
        return ChannelOutcome(channel, None, missing)
    if channel is Channel.OUTGOING:
        result = probe_smtp(endpoint, plan.credentials, on_step)
    elif plan.protocol is Protocol.POP3:
        result = probe_pop3(endpoint, plan.credentials, on_step)
    else:
        result = probe_imap(endpoint, plan.credentials, on_step)
    return ChannelOutcome(channel, result, result.error)


def _configuration_step(channel: Channel, error: SyncError) -> dict[str, Any]:
    return {
        "channel": channel.value,
        "name": "configuration",
        "ok": False,
        "seconds": 0.0,
        "detail": error.detail,
        "code": error.code.value,
    }


def _probe_step(channel: Channel, step: ProbeStep) -> dict[str, Any]:
    return {
        "channel": channel.value,
        "name": step.name,
        "ok": step.ok,
        "seconds": round(step.seconds, 4),
        "detail": step.detail,
        "code": step.code.value if step.code else None,
    }


def _append_step(store: Store, test_id: uuid.UUID, step: dict[str, Any]) -> None:
    """One finished step onto the run, in a transaction of its own."""
    with store.transaction() as session:
        run = session.get(MailboxTest, test_id)
        if run is not None:
            # A new list: the JSON column notices reassignment, not mutation.
            run.steps = [*run.steps, step]


def start_check(store: Store, mailbox_id: uuid.UUID) -> uuid.UUID:
    """A new, unfinished run for the mailbox; its id. Caller checks rights."""
    with store.transaction() as session:
        if session.get(Mailbox, mailbox_id) is None:
            raise NotFound("mailbox", mailbox_id)
        run = MailboxTest(mailbox_id=mailbox_id, started_at=utcnow(), ok=False, steps=[])
        session.add(run)
        session.flush()
        return run.id


def check_and_enable(
    store: Store, box: SecretBox, mailbox_id: uuid.UUID, *, policy: RetryPolicy | None = None
) -> MailboxTest:
    """Check every channel the mailbox uses and record the outcome. Caller checks rights."""
    return run_check(store, box, start_check(store, mailbox_id), policy=policy)


def run_check(
    store: Store, box: SecretBox, test_id: uuid.UUID, *, policy: RetryPolicy | None = None
) -> MailboxTest:
    """Run the checks of the run ``start_check`` made, appending each step as it ends."""
    policy = policy or RetryPolicy()
    try:
        return _run(store, box, test_id, policy)
    except Exception:
        # The run must end even so, or a page would wait on it until it is stale.
        log.exception("Test & Enable run %s failed", test_id)
        _finish_broken(store, test_id)
        raise


def _run(store: Store, box: SecretBox, test_id: uuid.UUID, policy: RetryPolicy) -> MailboxTest:
    with store.transaction() as session:
        run = session.get(MailboxTest, test_id)
        if run is None:
            raise NotFound("mailbox_test", test_id)
        mailbox_id = run.mailbox_id
    token_error = token_problem(store, box, mailbox_id)
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise NotFound("mailbox", mailbox_id)
        wanted = channels_to_test(mailbox)
        try:
            plan: ConnectionPlan | SyncError = token_error or plan_for(mailbox, box)
        except SyncError as exc:
            plan = exc
    outcomes = []
    for channel in wanted:
        if isinstance(plan, SyncError):
            outcome = ChannelOutcome(channel, None, plan)
        else:
            outcome = _probe(channel, plan, _appender(store, test_id, channel))
        if outcome.result is None:
            assert outcome.error is not None
            _append_step(store, test_id, _configuration_step(channel, outcome.error))
        outcomes.append(outcome)
    return _record(store, test_id, outcomes, policy)


def _appender(store: Store, test_id: uuid.UUID, channel: Channel) -> OnStep:
    def append(step: ProbeStep) -> None:
        _append_step(store, test_id, _probe_step(channel, step))

    return append


def _finish_broken(store: Store, test_id: uuid.UUID) -> None:
    try:
        with store.transaction() as session:
            run = session.get(MailboxTest, test_id)
            if run is not None and run.finished_at is None:
                run.finished_at, run.ok = utcnow(), False
    except Exception:  # the original failure is what the log must show
        log.exception("Test & Enable run %s could not be closed", test_id)


def _record(
    store: Store,
    test_id: uuid.UUID,
    outcomes: list[ChannelOutcome],
    policy: RetryPolicy,
) -> MailboxTest:
    now = utcnow()
    with store.transaction() as session:
        run = session.get(MailboxTest, test_id)
        if run is None:
            raise NotFound("mailbox_test", test_id)
        mailbox_id = run.mailbox_id
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise NotFound("mailbox", mailbox_id)
        organisation = session.get(Organisation, mailbox.organisation_id)
        assert organisation is not None
        settings = OrganisationSettings.model_validate(organisation.settings)
        approved = mailbox.approval is Approval.APPROVED or (
            not settings.process_email_only_for_approved
        )
        for outcome in outcomes:
            channel = mailbox.channel(outcome.channel)
            if outcome.error is None:
                mark_channel_ok(channel, now=now, enable=approved)
                if outcome.channel is Channel.INCOMING:
                    reset_uidvalidity_resyncs(session, mailbox_id)
            else:
                record_failure(
                    session,
                    mailbox,
                    channel,
                    outcome.error,
                    policy=policy,
                    now=now,
                    force_disable=True,
                )
        all_ok = bool(outcomes) and all(outcome.ok for outcome in outcomes)
        if all_ok and not approved:
            raise_catalogued(
                session,
                AlertCode.APPROVAL_PENDING,
                organisation_id=mailbox.organisation_id,
                detail=f"{mailbox.email_address} passed every check.",
                mailbox=mailbox,
                now=now,
            )
        run.finished_at, run.ok = now, all_ok
        session.flush()
        return run
