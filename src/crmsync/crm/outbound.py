"""Outgoing email in the record store: asking to send, cancelling, and every status change.

An email's life as crmsync sends it (``Email.status``)::

             send()              claim, committed           the server accepted (250)
    draft ──────────▶ pending_send ──────────────▶ sending ──────────────────────────▶ sent
                       │      ▲                     │                                  │
              cancel() │      └─ 4xx or network ────┤  retried at next_send_at;        │ a DSN
                       ▼         (under the limit)  │  after a broken connection,      ▼
                   canceled                         │  maybe_sent: look in Sent first  bounced_*
                                                    │
    failed ◀───────────── 5xx, or the limit reached ┘
      │ ▲
      │ └──── sending, its worker gone, no copy in the Sent folder: DELIVERY_UNCERTAIN
      │       (found in the Sent folder instead: sent)
      └─ send() again ─▶ pending_send

``canceled`` means never delivered: cancel() takes a pending_send email, but not one
marked maybe_sent until the Sent folder has been searched for it.

Who writes what: ``request_send`` and ``cancel_send`` here act for a person (rights
checked: write on the email); ``hold`` and the address and mailbox look-ups serve both.
The outgoing engine's own transitions, a system process's that check no rights, are in
crmsync.crm.outbound_transitions.

Must never talk to a mail server, hold a transaction open across one (the engine calls
in short transactions), or send anything: it only records.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.alerts import AlertCode
from crmsync.core.types import (
    ActivityState,
    Approval,
    Channel,
    Direction,
    EmailStatus,
    Participation,
    Privilege,
    RecordType,
    SyncMethod,
)
from crmsync.crm import access
from crmsync.crm.alerts import raise_catalogued
from crmsync.crm.db import update_rows, utcnow
from crmsync.crm.errors import Conflict, Forbidden, InvalidReference, RuleViolation
from crmsync.crm.models.activities import Activity, ActivityParty, Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Organisation, Queue, User
from crmsync.crm.records import RECORD_MODELS
from crmsync.crm.settings import OrganisationSettings

RECIPIENTS = (Participation.TO, Participation.CC, Participation.BCC)
WAITING = AlertCode.OUTGOING_WAITING.value  # also the error code of each waiting email
SENDABLE = (EmailStatus.DRAFT, EmailStatus.FAILED)


def table_of(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


EMAILS = table_of(Email)
ACTIVITIES = table_of(Activity)


def organisation_settings(session: Session, organisation_id: uuid.UUID) -> OrganisationSettings:
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    return OrganisationSettings.model_validate(organisation.settings)


# -- who sends, and to which addresses ----------------------------------------------------


def _record_of(session: Session, record_type: RecordType, record_id: uuid.UUID) -> Any:
    models: dict[RecordType, Any] = {RecordType.USER: User, RecordType.QUEUE: Queue}
    model = models.get(record_type) or RECORD_MODELS.get(record_type)
    return session.get(model, record_id) if model is not None else None


def record_address(record: Any) -> str | None:
    """The first usable address of a user, queue or email-enabled record."""
    if isinstance(record, User):
        candidates = record.email_addresses
    elif isinstance(record, Queue):
        candidates = [record.email or ""]
    else:
        fields = getattr(record, "__email_fields__", ())
        candidates = [getattr(record, name) or "" for name in fields]
    return next((c.strip() for c in candidates if c and normalise_address(c)), None)


def party_address(session: Session, party: ActivityParty) -> str | None:
    """The address ``party`` is written to: its own, else its record's first one."""
    if party.address and normalise_address(party.address):
        return party.address.strip()
    if party.party_type is None or party.party_id is None:
        return None
    record = _record_of(session, party.party_type, party.party_id)
    return record_address(record) if record is not None else None


def sending_mailbox(session: Session, email: Email) -> Mailbox | None:
    """The mailbox that sends ``email``: its From queue's or user's, else its owner's."""
    sender = next(
        (p for p in email.parties if p.participation is Participation.FROM and p.party_id),
        None,
    )
    if sender is not None and sender.party_type is RecordType.QUEUE:
        return session.scalar(select(Mailbox).where(Mailbox.queue_id == sender.party_id))
    user_id = sender.party_id if sender is not None else email.owner_id
    return session.scalar(select(Mailbox).where(Mailbox.user_id == user_id))


def display_name_of(session: Session, mailbox: Mailbox) -> str:
    """The mailbox owner's name as a From display name: the user's or the queue's."""
    if mailbox.user_id is not None:
        user = session.get(User, mailbox.user_id)
        return (user.full_name or user.username) if user is not None else ""
    queue = session.get(Queue, mailbox.queue_id) if mailbox.queue_id else None
    return queue.name if queue is not None else ""


def sending_blocker(session: Session, mailbox: Mailbox) -> str:
    """Why ``mailbox`` cannot send now ('' when it can): the outgoing channel's rules."""
    settings = organisation_settings(session, mailbox.organisation_id)
    if settings.process_email_only_for_approved and mailbox.approval is not Approval.APPROVED:
        return f"the mailbox is {mailbox.approval.value}, not approved"
    if mailbox.outgoing_method is SyncMethod.NONE:
        return "the mailbox's outgoing method is none"
    if mailbox.profile_id is None:
        return "the mailbox has no email server profile"
    if not mailbox.channel(Channel.OUTGOING).enabled:
        return "the mailbox's outgoing channel is disabled (run Test & Enable)"
    return ""


def hold(session: Session, mailbox: Mailbox, why: str, now: datetime | None = None) -> int:
    """Tell the owner that ``mailbox``'s queued email waits and why; returns how many wait.

    The emails stay pending (they go as soon as the mailbox can send); each says why in
    ``send_error``, and one alert (deduplicated hourly) reaches the mailbox's owner.
    """
    now = now or utcnow()
    waiting = update_rows(
        session,
        EMAILS,
        EMAILS.c.send_mailbox_id == mailbox.id,
        EMAILS.c.status == EmailStatus.PENDING_SEND.value,
        send_error_code=WAITING,
        send_error=f"Waiting: {why}",
    )
    if waiting:
        raise_catalogued(
            session,
            AlertCode.OUTGOING_WAITING,
            organisation_id=mailbox.organisation_id,
            detail=f"{waiting} email(s) from {mailbox.email_address or mailbox.name} wait: {why}.",
            mailbox=mailbox,
            channel=Channel.OUTGOING,
            now=now,
        )
    return waiting


# -- a person asks --------------------------------------------------------------------------


def _check_sender(
    session: Session, principal: access.Principal, email: Email, mailbox: Mailbox | None
) -> Mailbox:
    sender = next((p for p in email.parties if p.participation is Participation.FROM), None)
    if sender is not None and sender.party_type not in (None, RecordType.USER, RecordType.QUEUE):
        raise RuleViolation(
            "SENDER_NOT_A_MAILBOX",
            "The From party must be a user or a queue (or left out: the owner sends)",
            field="parties",
        )
    if (
        sender is not None
        and sender.party_type is RecordType.USER
        and sender.party_id not in (email.owner_id, principal.user_id)
    ):
        raise Forbidden("You may not send as another user", privilege="write")
    if mailbox is None:
        raise RuleViolation(
            "NO_SENDING_MAILBOX",
            "The sender (the From user or queue, else the email's owner) has no mailbox",
            field="parties",
        )
    if not mailbox.email_address or not normalise_address(mailbox.email_address):
        raise RuleViolation(
            "NO_SENDING_MAILBOX", "The sending mailbox has no email address", field="parties"
        )
    return mailbox


def _check_recipients(session: Session, email: Email) -> None:
    recipients = [p for p in email.parties if p.participation in RECIPIENTS]
    if not recipients:
        raise RuleViolation(
            "NO_RECIPIENTS", "Add at least one To, Cc or Bcc recipient", field="parties"
        )
    for party in recipients:
        address = party_address(session, party)
        if address is None:
            raise RuleViolation(
                "RECIPIENT_WITHOUT_ADDRESS",
                f"parties.{party.position} has no email address to send to",
                field=f"parties.{party.position}",
            )
        party.address = address  # what it is sent to, kept on the record


def _ensure_from(session: Session, email: Email, mailbox: Mailbox) -> None:
    sender = next((p for p in email.parties if p.participation is Participation.FROM), None)
    if sender is None:
        first = min((p.position for p in email.parties), default=0)
        email.parties.append(
            ActivityParty(
                position=first - 1,
                participation=Participation.FROM,
                party_type=RecordType.QUEUE if mailbox.queue_id else RecordType.USER,
                party_id=mailbox.queue_id or mailbox.user_id,
                address=mailbox.email_address,
                display_name=display_name_of(session, mailbox)[:300],
            )
        )
    elif not sender.address:
        sender.address = mailbox.email_address


def request_send(
    session: Session,
    principal: access.Principal,
    email: Email,
    *,
    reply_to_email_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Email:
    """draft (or failed) → pending_send: the outgoing engine sends it from the sender's
    mailbox. Needs write on the email, a recipient with an address and a sending
    mailbox with an address; a mailbox that cannot send yet keeps it pending, with an
    alert to its owner saying why."""
    now = now or utcnow()
    access.require(session, principal, email, Privilege.WRITE)
    if email.status not in SENDABLE:
        raise Conflict(
            f"Only a draft or a failed email can be sent; this one is {email.status.value}"
        )
    if reply_to_email_id is not None:
        parent = session.get(Email, reply_to_email_id)
        if parent is None or not access.can(session, principal, parent, Privilege.READ):
            raise InvalidReference(
                "reply_to_email_id names no email you can see", field="reply_to_email_id"
            )
        if not parent.message_id:
            raise InvalidReference(
                "The email replied to has no Message-ID", field="reply_to_email_id"
            )
        email.reply_to_email_id = parent.id
    mailbox = _check_sender(session, principal, email, sending_mailbox(session, email))
    _check_recipients(session, email)
    _ensure_from(session, email, mailbox)
    email.status = EmailStatus.PENDING_SEND
    email.state = ActivityState.OPEN
    email.direction = Direction.OUTGOING
    email.send_mailbox_id = mailbox.id
    email.next_send_at = None
    email.delivery_attempts = 0
    email.send_claim = email.send_claimed_at = None
    email.send_error_code = email.send_error = None
    email.maybe_sent = False
    session.flush()
    why = sending_blocker(session, mailbox)
    if why:
        hold(session, mailbox, why, now)
        session.refresh(email)
    return email


def cancel_send(session: Session, principal: access.Principal, email: Email) -> Email:
    """pending_send → canceled. Once the engine has claimed it (sending), it is too late;
    so it is while a retry is marked ``maybe_sent``: the server may have accepted it
    before the connection broke, and until the Sent folder has been searched nobody
    knows, so "canceled" (never delivered) could be a lie."""
    access.require(session, principal, email, Privilege.WRITE)
    changed = update_rows(
        session,
        EMAILS,
        EMAILS.c.id == email.id,
        EMAILS.c.status == EmailStatus.PENDING_SEND.value,
        EMAILS.c.maybe_sent.is_(False),
        status=EmailStatus.CANCELED.value,
        next_send_at=None,
    )
    session.refresh(email)
    if not changed and email.status is EmailStatus.PENDING_SEND and email.maybe_sent:
        raise Conflict(
            "The connection broke while this email was being sent, so it may have been "
            "delivered already; it can be canceled once crmsync has looked for it in the "
            "Sent folder"
        )
    if not changed:
        raise Conflict(
            f"Only an email waiting to be sent can be canceled; this one is {email.status.value}"
        )
    set_activity(session, email.id, state=ActivityState.CANCELED)
    session.refresh(email)
    return email


def set_activity(session: Session, email_id: uuid.UUID, **values: Any) -> None:
    update_rows(session, ACTIVITIES, ACTIVITIES.c.id == email_id, **values)
