"""What a channel failure means for the mailbox: retry later, or disable and alert.

The decision follows the catalogue: a transient error is retried with backoff (the
channel stays enabled, ``next_attempt_at`` says when) until the retry policy gives up;
a permanent error — or a transient one past the limit — disables only this channel and
raises an alert to the mailbox's and the profile's owners. When more than half of a
profile's mailboxes fail within an hour, the profile's owner gets one alert of its own:
the server, not the mailboxes, is likely the problem.

Both kinds of alert name their cause, so they resolve themselves when it is gone
(crmsync.crm.alerts.mark_channel_ok: the channel succeeds again, or no longer most of
the profile's mailboxes fail).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from crmsync.core.alerts import AlertCode
from crmsync.core.errors import RetryPolicy, SyncError
from crmsync.core.types import AlertCause, AlertSeverity
from crmsync.crm.alerts import failing_share, mark_channel_failed, raise_alert, raise_catalogued
from crmsync.crm.models.mail import Alert, Mailbox, MailboxChannel

__all__ = ["record_failure"]


def record_failure(
    session: Session,
    mailbox: Mailbox,
    channel: MailboxChannel,
    error: SyncError,
    *,
    policy: RetryPolicy,
    now: datetime,
    force_disable: bool = False,
) -> Alert:
    give_up = force_disable or policy.gives_up(error, channel.consecutive_failures + 1)
    retry_at = (
        None if give_up else now + timedelta(seconds=policy.delay(channel.consecutive_failures))
    )
    mark_channel_failed(
        channel,
        now=now,
        code=error.code.value,
        detail=error.detail,
        disable=give_up,
        retry_at=retry_at,
    )
    severity = AlertSeverity(error.entry.severity.value)
    if give_up and not error.transient:
        severity = AlertSeverity.ERROR
    remediation = error.remediation
    if give_up and error.transient:
        remediation += " The channel was disabled after repeated failures; run Test & Enable."
    alert = raise_alert(
        session,
        organisation_id=mailbox.organisation_id,
        severity=severity,
        code=error.code.value,
        title=f"{channel.channel.value.capitalize()}: {error.entry.title}",
        detail=error.detail,
        remediation=remediation,
        mailbox=mailbox,
        channel=channel.channel,
        cause=AlertCause.CHANNEL_FAILING,
        now=now,
    )
    _check_majority(session, mailbox, now)
    return alert


def _check_majority(session: Session, mailbox: Mailbox, now: datetime) -> None:
    profile = mailbox.profile
    if profile is None or not profile.alert_on_majority_failure:
        return
    session.flush()
    failing, total = failing_share(session, profile, now)
    if total and failing * 2 > total:
        raise_catalogued(
            session,
            AlertCode.PROFILE_MAJORITY_FAILING,
            organisation_id=profile.organisation_id,
            detail=f"{failing} of {total} mailboxes failed within the last hour.",
            profile=profile,
            cause=AlertCause.PROFILE_FAILING,
            now=now,
            profile_name=profile.name,
        )
