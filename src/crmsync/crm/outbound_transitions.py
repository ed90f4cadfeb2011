"""The outgoing engine's writes: each transition of crmsync.crm.outbound's status flow.

Every transition is a conditional UPDATE — ``WHERE status = 'sending' AND send_claim =
<worker>`` — so two workers, or a worker and a person cancelling, can never both win:
the loser changes nothing and is told so (False). They act for the engine (a system
process), check no rights, flush nothing they do not need to, and never commit.

Tracking tokens are numbered per organisation from one counter row, taken with one
atomic ``UPDATE ... RETURNING`` (no two workers get the same number); numbers wrap at
10**digits, as Dynamics 365's do. The Message-ID is registered as the org-wide email key
(``email_keys``) when it is assigned, before the message leaves.

Bounces: ``mark_bounced`` records recipient(s), status and reason on the email and tells
the owner of the mailbox that sent it (one alert per hour and mailbox, deduplicated).

Must never talk to a mail server or commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.alerts import AlertCode
from crmsync.core.tokens import TokenFormat, format_token
from crmsync.core.types import ActivityState, Channel, Direction, EmailStatus
from crmsync.crm.alerts import raise_catalogued
from crmsync.crm.db import update_rows, utcnow
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import EmailKey, TokenCounter
from crmsync.crm.outbound import EMAILS, set_activity, table_of

UNCERTAIN = AlertCode.DELIVERY_UNCERTAIN.value  # also the error code of such an email
LOOKUP_PENDING = "sent-folder-lookup-pending"  # a claim held by nobody: ask again later
COUNTERS = table_of(TokenCounter)


def _transition(session: Session, email_id: uuid.UUID, claim: str | None, **values: Any) -> bool:
    """Move a ``sending`` email held by ``claim`` on; False when it is not (any more)."""
    held = EMAILS.c.send_claim.is_(None) if claim is None else EMAILS.c.send_claim == claim
    sending = EMAILS.c.status == EmailStatus.SENDING.value
    return bool(update_rows(session, EMAILS, EMAILS.c.id == email_id, sending, held, **values))


def _maybe_sent_retry(session: Session, email_id: uuid.UUID, **values: Any) -> bool:
    """Update the pending_send email ``email_id`` marked ``maybe_sent``; False when it is not."""
    return bool(
        update_rows(
            session,
            EMAILS,
            EMAILS.c.id == email_id,
            EMAILS.c.status == EmailStatus.PENDING_SEND.value,
            EMAILS.c.maybe_sent.is_(True),
            **values,
        )
    )


def claim(
    session: Session, email_id: uuid.UUID, mailbox_id: uuid.UUID, worker: str, now: datetime
) -> bool:
    """pending_send → sending for ``worker``, counting a delivery attempt.

    False when someone was first: a person cancelled it, or another worker claimed it.
    """
    due = EMAILS.c.next_send_at.is_(None) | (EMAILS.c.next_send_at <= now)
    changed = update_rows(
        session,
        EMAILS,
        EMAILS.c.id == email_id,
        EMAILS.c.send_mailbox_id == mailbox_id,
        EMAILS.c.status == EmailStatus.PENDING_SEND.value,
        due,
        status=EmailStatus.SENDING.value,
        send_claim=worker,
        send_claimed_at=now,
        delivery_attempts=EMAILS.c.delivery_attempts + 1,
    )
    return bool(changed)


def allocate_token(session: Session, organisation_id: uuid.UUID, fmt: TokenFormat) -> str:
    """The organisation's next tracking token, ``'CRM:0000043'``; unique across workers."""
    bump = (
        update(COUNTERS)
        .where(COUNTERS.c.organisation_id == organisation_id)
        .values(last_number=COUNTERS.c.last_number + 1)
        .returning(COUNTERS.c.last_number)
    )
    number = session.execute(bump).scalar()
    if number is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(COUNTERS).values(organisation_id=organisation_id, last_number=1)
                )
            number = 1
        except IntegrityError:  # another worker made the row first: take the next one
            number = session.execute(bump).scalar_one()
    return format_token(int(number) % 10**fmt.digits, fmt)


def assign_identity(session: Session, email: Email, *, message_id: str, token: str | None) -> None:
    """Give ``email`` its Message-ID (kept across attempts) and token, and register the
    Message-ID as the org-wide email key, so a copy read back by the incoming engine
    (Sent folder, a Bcc to oneself) links to this email instead of becoming another."""
    if token and not email.tracking_token:
        email.tracking_token = token
    if not email.message_id:
        # 128 random bits: no key can exist for it yet, so no look-up and no savepoint.
        email.message_id = message_id
        session.add(
            EmailKey(organisation_id=email.organisation_id, key=message_id, email_id=email.id)
        )
        return
    if session.get(EmailKey, (email.organisation_id, email.message_id)) is None:
        try:
            with session.begin_nested():
                session.add(
                    EmailKey(
                        organisation_id=email.organisation_id,
                        key=email.message_id,
                        email_id=email.id,
                    )
                )
        except IntegrityError:
            pass  # the id names a message stored already; nothing to link here


@dataclass(frozen=True)
class SentFacts:
    at: datetime
    copy_pending: bool
    refused: str = ""


def record_sent(session: Session, email_id: uuid.UUID, claim: str | None, facts: SentFacts) -> bool:
    """sending → sent (the server accepted it); False when ``claim`` no longer holds it."""
    done = _transition(
        session,
        email_id,
        claim,
        status=EmailStatus.SENT.value,
        send_claim=None,
        next_send_at=None,
        maybe_sent=False,
        copy_pending=facts.copy_pending,
        send_error_code="RECIPIENT_REJECTED" if facts.refused else None,
        send_error=f"Not accepted for: {facts.refused}"[:4000] if facts.refused else None,
    )
    if done:
        _completed(session, email_id, facts.at)
    return done


def _completed(session: Session, email_id: uuid.UUID, at: datetime) -> None:
    set_activity(
        session,
        email_id,
        state=ActivityState.COMPLETED,
        actual_start=at,
        actual_end=at,
        occurred_at=at,
    )


def late_sent(session: Session, email_id: uuid.UUID, facts: SentFacts) -> bool:
    """failed (DELIVERY_UNCERTAIN) → sent: a worker held up past its claim got the
    server's acceptance after another worker had judged the email uncertain."""
    done = bool(
        update_rows(
            session,
            EMAILS,
            EMAILS.c.id == email_id,
            EMAILS.c.status == EmailStatus.FAILED.value,
            EMAILS.c.send_error_code == UNCERTAIN,
            status=EmailStatus.SENT.value,
            copy_pending=facts.copy_pending,
            send_error_code=None,
            send_error=None,
        )
    )
    if done:
        _completed(session, email_id, facts.at)
    return done


def record_retry(
    session: Session,
    email_id: uuid.UUID,
    claim: str | None,
    *,
    retry_at: datetime,
    code: str,
    detail: str,
    maybe_sent: bool,
) -> bool:
    """sending → pending_send again, not before ``retry_at``."""
    return _transition(
        session,
        email_id,
        claim,
        status=EmailStatus.PENDING_SEND.value,
        send_claim=None,
        next_send_at=retry_at,
        maybe_sent=maybe_sent,
        send_error_code=code,
        send_error=detail[:4000],
    )


def record_failed(
    session: Session, email_id: uuid.UUID, claim: str | None, *, code: str, detail: str
) -> bool:
    """sending → failed, with the server's answer (or crmsync's reason) kept."""
    return _transition(
        session,
        email_id,
        claim,
        status=EmailStatus.FAILED.value,
        send_claim=None,
        next_send_at=None,
        send_error_code=code,
        send_error=detail[:4000],
    )


def release_for_resend(session: Session, email_id: uuid.UUID, claim: str | None) -> bool:
    """sending (its worker gone) → pending_send, to be sent again at once."""
    return _transition(
        session,
        email_id,
        claim,
        status=EmailStatus.PENDING_SEND.value,
        send_claim=None,
        next_send_at=None,
        maybe_sent=False,
    )


def clear_maybe_sent(session: Session, email_ids: list[uuid.UUID]) -> None:
    """No copy was found in Sent: these may be sent again."""
    if email_ids:
        update_rows(
            session,
            EMAILS,
            EMAILS.c.id.in_(email_ids),
            EMAILS.c.status == EmailStatus.PENDING_SEND.value,
            maybe_sent=False,
        )


def sent_after_all(session: Session, email_id: uuid.UUID, now: datetime) -> bool:
    """pending_send with ``maybe_sent`` → sent: the copy in Sent shows it was accepted."""
    done = _maybe_sent_retry(
        session,
        email_id,
        status=EmailStatus.SENT.value,
        maybe_sent=False,
        next_send_at=None,
        copy_pending=False,
        send_error_code=None,
        send_error=None,
    )
    if done:
        set_activity(
            session, email_id, state=ActivityState.COMPLETED, actual_end=now, occurred_at=now
        )
    return done


def postpone_lookup(
    session: Session,
    email_id: uuid.UUID,
    claim: str | None,
    *,
    orphan: bool,
    now: datetime,
    retry_at: datetime,
) -> bool:
    """The Sent folder could not be searched: ask again later, not at every tick.

    An orphan keeps ``sending`` under a claim nobody holds, dated now, so it is looked
    at again once that claim is older than the lease TTL; a ``maybe_sent`` retry waits
    until ``retry_at``.
    """
    if orphan:
        return _transition(session, email_id, claim, send_claim=LOOKUP_PENDING, send_claimed_at=now)
    return _maybe_sent_retry(session, email_id, next_send_at=retry_at)


def copies_saved(session: Session, email_ids: list[uuid.UUID]) -> None:
    if email_ids:
        update_rows(session, EMAILS, EMAILS.c.id.in_(email_ids), copy_pending=False)


def alert_uncertain(session: Session, mailbox: Mailbox, subject: str, now: datetime) -> None:
    raise_catalogued(
        session,
        AlertCode.DELIVERY_UNCERTAIN,
        organisation_id=mailbox.organisation_id,
        detail=f"{subject[:200]!r}: crmsync stopped while handing it to the mail server "
        "and found no copy in the Sent folder; it was not sent again.",
        mailbox=mailbox,
        channel=Channel.OUTGOING,
        now=now,
    )


# -- bounces ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounce:
    recipient: str
    status: str
    reason: str


def _bounce_line(bounce: Bounce) -> str:
    """``'5.1.1 (bob@example.test) smtp; 550 5.1.1 User unknown'``."""
    who = f"({bounce.recipient})" if bounce.recipient else ""
    return " ".join(part for part in (bounce.status, who, bounce.reason) if part)


def mark_bounced(
    session: Session,
    email: Email,
    bounces: list[Bounce],
    *,
    alert_mailbox: Mailbox | None,
    now: datetime | None = None,
) -> bool:
    """Record that ``email`` could not be delivered to some recipients, and alert its
    owner; False (nothing changed) when these bounces were recorded already."""
    now = now or utcnow()
    recipients = ", ".join(dict.fromkeys(b.recipient for b in bounces if b.recipient))
    status = next((b.status for b in bounces if b.status), "")
    reason = "; ".join(dict.fromkeys(_bounce_line(bounce) for bounce in bounces))
    if email.bounced_at is not None and (email.bounce_recipient or "") == recipients[:320]:
        return False
    email.bounced_at = now
    email.bounce_recipient = recipients[:320] or None
    email.bounce_status = status[:32] or None
    email.bounce_reason = reason[:4000] or None
    mailbox = session.get(Mailbox, email.send_mailbox_id) if email.send_mailbox_id else None
    mailbox = mailbox or alert_mailbox
    session.flush()
    if mailbox is not None:
        raise_catalogued(
            session,
            AlertCode.EMAIL_BOUNCED,
            organisation_id=email.organisation_id,
            detail=f"{email.subject[:200]!r} to {recipients or 'a recipient'}: "
            f"{reason[:500] or 'the mail system returned it'}",
            mailbox=mailbox,
            channel=Channel.OUTGOING,
            now=now,
        )
    return True


def outgoing_email(session: Session, organisation_id: uuid.UUID, ids: list[str]) -> Email | None:
    """The CRM-sent email with the first of ``ids`` (Message-IDs) that names one."""
    if not ids:
        return None
    found = {
        email.message_id: email
        for email in session.scalars(
            select(Email).where(
                and_(
                    Email.organisation_id == organisation_id,
                    Email.message_id.in_(ids),
                    Email.direction == Direction.OUTGOING,
                )
            )
        )
    }
    return next((found[i] for i in ids if i in found), None)
