"""Test & Enable: a real, step-by-step check of a mailbox against its servers.

    gather (short transaction)   mailbox, profile, decrypted credentials → ConnectionPlan
    probe  (no transaction)      DNS → TCP → TLS → authentication → INBOX / EHLO+AUTH
    record (short transaction)   a MailboxTest with every step; channels enabled or not;
                                 alerts for what failed

A channel whose check passes is enabled — but only once the mailbox is approved when the
organisation processes email only for approved mailboxes; otherwise it stays disabled
with an information alert saying approval is what is missing. A failing check leaves the
channel disabled with an alert that says what to fix. No message is ever sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from crmsync.connectors.probe import ProbeResult, probe_imap, probe_pop3, probe_smtp
from crmsync.crm.alerts import mark_channel_ok, raise_alert
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import Mailbox, MailboxTest
from crmsync.crm.models.org import Organisation
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import OrganisationSettings
from crmsync.crm.store import Store
from crmsync.crm.types import AlertSeverity, Approval, Channel, IncomingMethod, SyncMethod
from crmsync.sync.connection_plan import ConnectionPlan, plan_for
from crmsync.sync.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.sync.health import record_failure
from crmsync.sync.oauth_tokens import token_problem

APPROVAL_PENDING = "APPROVAL_PENDING"


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


def _probe(channel: Channel, plan: ConnectionPlan) -> ChannelOutcome:
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
        result = probe_smtp(endpoint, plan.credentials)
    elif plan.protocol == "pop3":
        result = probe_pop3(endpoint, plan.credentials)
    else:
        result = probe_imap(endpoint, plan.credentials)
    return ChannelOutcome(channel, result, result.error)


def _steps(outcome: ChannelOutcome) -> list[dict[str, Any]]:
    if outcome.result is None:
        assert outcome.error is not None
        return [
            {
                "channel": outcome.channel.value,
                "name": "configuration",
                "ok": False,
                "seconds": 0.0,
                "detail": outcome.error.detail,
                "code": outcome.error.code.value,
            }
        ]
    return [
        {
            "channel": outcome.channel.value,
            "name": step.name,
            "ok": step.ok,
            "seconds": round(step.seconds, 4),
            "detail": step.detail,
            "code": step.code.value if step.code else None,
        }
        for step in outcome.result.steps
    ]


def check_and_enable(
    store: Store, box: SecretBox, mailbox_id: uuid.UUID, *, policy: RetryPolicy | None = None
) -> MailboxTest:
    """Check every channel the mailbox uses and record the outcome. Caller checks rights."""
    policy = policy or RetryPolicy()
    started = utcnow()
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
    outcomes = [
        ChannelOutcome(channel, None, plan)
        if isinstance(plan, SyncError)
        else _probe(channel, plan)
        for channel in wanted
    ]
    return _record(store, mailbox_id, outcomes, policy, started)


def _record(
    store: Store,
    mailbox_id: uuid.UUID,
    outcomes: list[ChannelOutcome],
    policy: RetryPolicy,
    started: Any,
) -> MailboxTest:
    now = utcnow()
    with store.transaction() as session:
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
            raise_alert(
                session,
                organisation_id=mailbox.organisation_id,
                severity=AlertSeverity.INFORMATION,
                code=APPROVAL_PENDING,
                title="Test passed; the mailbox awaits approval",
                detail=f"{mailbox.email_address} passed every check.",
                remediation="An administrator approves the mailbox; email is processed "
                "only for approved mailboxes in this organisation.",
                mailbox=mailbox,
                now=now,
            )
        run = MailboxTest(
            mailbox_id=mailbox.id,
            started_at=started,
            finished_at=now,
            ok=all_ok,
            steps=[step for outcome in outcomes for step in _steps(outcome)],
        )
        session.add(run)
        session.flush()
        return run
