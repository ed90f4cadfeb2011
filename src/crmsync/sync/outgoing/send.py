"""One email through the outgoing engine: claim and compose, then record the outcome.

    prepare (in the caller's short transaction, before any SMTP command)
        pending_send → sending (conditional UPDATE: one worker wins), delivery attempt
        counted; Message-ID (kept across attempts) and tracking token assigned and the
        Message-ID registered as the org-wide email key; the message composed
        (crmsync.tracking.compose) and its bytes kept in the blob store; subject,
        In-Reply-To, References and Thread-Index written back to the activity.
        Committed before the message is handed over: a crash from here on leaves a
        ``sending`` email the next pass looks up in the Sent folder.
    (the caller sends, with no transaction open)
    record (another short transaction)
        the ``outgoing_decide`` verdict: sent, retry later, or failed.

A draft that cannot become a message (no address, a missing attachment file, over the
size limit) fails at prepare with a reason; it is never retried.

Must never talk to a server or commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from crmsync.connectors.base import SendResult
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import Participation
from crmsync.crm import outbound
from crmsync.crm import outbound_transitions as transitions
from crmsync.crm.blobs import BlobStore
from crmsync.crm.models.activities import Email
from crmsync.crm.settings import OrganisationSettings
from crmsync.sync.outgoing.decide import Decision, Verdict
from crmsync.tracking.compose import (
    Composed,
    ComposeError,
    Draft,
    OutgoingAttachment,
    Parent,
    compose,
)
from crmsync.tracking.correlate import CorrelationSettings, subject_key
from crmsync.tracking.headers import Address, extract_msgids
from crmsync.tracking.token import TokenFormat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sender:
    """What one pass knows about the sending mailbox, read once."""

    mailbox_id: uuid.UUID
    organisation_id: uuid.UUID
    address: str
    display_name: str
    save_copy: bool
    settings: OrganisationSettings

    @property
    def token_format(self) -> TokenFormat:
        return self.settings.token_format


@dataclass(frozen=True)
class Prepared:
    email_id: uuid.UUID
    attempts: int
    composed: Composed


def new_message_id(domain: str) -> str:
    """``'<crm.3f2a…@acme.example>'``: 128 random bits in the organisation's domain."""
    return f"<crm.{secrets.token_hex(16)}@{domain.strip().strip('.') or 'crmsync.invalid'}>"


def _parent(session: Session, email: Email) -> Parent | None:
    if email.reply_to_email_id is not None:
        parent = session.get(Email, email.reply_to_email_id)
        if parent is not None and parent.message_id:
            return Parent(
                message_id=parent.message_id,
                references=extract_msgids(parent.references or ""),
                in_reply_to=parent.in_reply_to,
                thread_index=parent.conversation_index,
            )
    if email.in_reply_to:  # set by whoever wrote the email, or by an earlier attempt
        return Parent(
            message_id=email.in_reply_to,
            references=extract_msgids(email.references or ""),
            thread_index=None,
        )
    return None


def gather_draft(
    session: Session, blobs: BlobStore, sender: Sender, email: Email, now: datetime
) -> Draft:
    """The ``Draft`` of ``email`` (identity assigned already); ComposeError when it
    cannot be one."""
    groups: dict[Participation, list[Address]] = {p: [] for p in outbound.RECIPIENTS}
    for party in email.parties:
        if party.participation not in groups:
            continue
        address = outbound.party_address(session, party)
        if address is None:
            raise ComposeError(f"parties.{party.position} has no email address")
        groups[party.participation].append(Address(party.display_name, address))
    attachments = []
    for attachment in email.attachments:
        try:
            data = blobs.get(attachment.blob_sha256)
        except (OSError, ValueError) as exc:
            raise ComposeError(
                f"the file of attachment {attachment.filename!r} is missing"
            ) from exc
        attachments.append(
            OutgoingAttachment(
                attachment.filename,
                attachment.content_type,
                data,
                attachment.content_id,
                inline=attachment.content_id is not None,
            )
        )
    assert email.message_id is not None
    return Draft(
        sender=Address(sender.display_name, sender.address),
        to=tuple(groups[Participation.TO]),
        cc=tuple(groups[Participation.CC]),
        bcc=tuple(groups[Participation.BCC]),
        subject=email.subject,
        text=email.body_text,
        html=email.description or None,
        attachments=tuple(attachments),
        message_id=email.message_id,
        date=now,
        token=email.tracking_token if sender.settings.use_tracking_token else None,
        token_format=sender.token_format,
        parent=_parent(session, email),
        thread_index=email.conversation_index,
    )


def _write_back(
    session: Session, blobs: BlobStore, sender: Sender, email: Email, c: Composed
) -> None:
    email.subject = c.subject[:400]
    email.normalised_subject = (
        subject_key(c.subject, CorrelationSettings(token_format=sender.token_format))[:400] or None
    )
    email.in_reply_to = c.in_reply_to
    email.references = " ".join(c.references) or None
    email.conversation_index = c.thread_index
    email.conversation_guid = c.conversation_guid
    sha256 = blobs.put(session, c.raw)
    session.flush()  # the blob row first: emails.raw_sha256 references it
    email.raw_sha256 = sha256


def prepare(
    session: Session,
    blobs: BlobStore,
    sender: Sender,
    email_id: uuid.UUID,
    worker: str,
    now: datetime,
) -> Prepared | Decision | None:
    """Claim and compose one email; None when it is no longer ours to send (canceled,
    claimed by another worker, not due), a FAILED ``Decision`` (recorded already) when it
    cannot become a message."""
    if not transitions.claim(session, email_id, sender.mailbox_id, worker, now):
        return None
    email = session.get(Email, email_id)
    assert email is not None
    try:
        with session.begin_nested():
            token = None
            if sender.settings.use_tracking_token and not email.tracking_token:
                token = transitions.allocate_token(
                    session, sender.organisation_id, sender.token_format
                )
            transitions.assign_identity(
                session, email, message_id=new_message_id(sender.settings.email_domain), token=token
            )
            composed = compose(gather_draft(session, blobs, sender, email, now))
            limit = sender.settings.max_message_bytes
            if len(composed.raw) > limit:
                raise _TooLarge(
                    f"the message has {len(composed.raw)} bytes; at most {limit} are sent"
                )
            _write_back(session, blobs, sender, email, composed)
    except (ComposeError, _TooLarge) as exc:
        code = (
            ErrorCode.MESSAGE_TOO_LARGE if isinstance(exc, _TooLarge) else ErrorCode.CONFIGURATION
        )
        decision = Decision(Verdict.FAILED, code.value, f"the email cannot be sent: {exc}")
    except Exception as exc:  # a bug must fail this email, not claim it again forever
        log.exception("outgoing: email %s could not be prepared", email_id)
        decision = Decision(
            Verdict.FAILED, ErrorCode.INTERNAL.value, f"{type(exc).__name__}: {exc}"[:500]
        )
    else:
        return Prepared(email_id, email.delivery_attempts, composed)
    transitions.record_failed(
        session, email_id, worker, code=decision.code or "", detail=decision.detail
    )
    return decision


class _TooLarge(Exception):
    pass


def record(
    session: Session,
    sender: Sender,
    prepared: Prepared,
    decision: Decision,
    worker: str,
    now: datetime,
) -> bool:
    """Record ``decision`` for an email this worker sent; False when the claim was lost."""
    email_id = prepared.email_id
    if decision.verdict is Verdict.SENT:
        facts = transitions.SentFacts(
            at=now, copy_pending=sender.save_copy, refused=decision.refused
        )
        done = transitions.record_sent(session, email_id, worker, facts)
        if not done:
            # Our claim timed out and another worker judged the email uncertain; we know
            # better: the server accepted it.
            done = transitions.late_sent(session, email_id, facts)
        return done
    if decision.verdict is Verdict.RETRY:
        assert decision.retry_at is not None
        return transitions.record_retry(
            session,
            email_id,
            worker,
            retry_at=decision.retry_at,
            code=decision.code or "",
            detail=decision.detail,
            maybe_sent=decision.maybe_sent,
        )
    return transitions.record_failed(
        session, email_id, worker, code=decision.code or "", detail=decision.detail
    )


# The server's reply in an SMTP error's detail: "RCPT refused for …: 550 5.1.1 …".
_REPLY = re.compile(r": ([2-5]\d\d) ")


def smtp_reply(outcome: SendResult | SyncError | None) -> int | None:
    """The SMTP reply code an attempt ended with: 250 when the server took the message
    (smtplib raises for any other answer to DATA), the refusing reply of an SMTP error,
    None for a network error or when no SMTP command was sent."""
    if isinstance(outcome, SendResult):
        return 250
    if isinstance(outcome, SyncError):
        found = _REPLY.search(outcome.detail)
        return int(found.group(1)) if found else None
    return None


def log_outcome(
    address: str,
    email_id: uuid.UUID,
    decision: Decision,
    *,
    outcome: SendResult | SyncError | None = None,
    recipients: int | None = None,
) -> None:
    """The operator's line for one email: INFO when sent, WARNING when it failed or waits
    for a retry. Its id, the sending mailbox, the outcome, the codes and how many
    recipients — never the recipients, the subject, the body or the server's text."""
    reply = smtp_reply(outcome)
    refused = len(outcome.refused) if isinstance(outcome, SendResult) else 0
    parts = [f"email {email_id} from {address}: {decision.verdict.value}"]
    if decision.code:
        parts.append(decision.code)
    if reply is not None:
        parts.append(f"SMTP {reply}")
    if recipients is not None:
        parts.append(f"{recipients} recipient{'s' if recipients != 1 else ''}")
    if refused:
        parts.append(f"{refused} refused")
    log.log(
        logging.INFO if decision.verdict is Verdict.SENT else logging.WARNING,
        "%s",
        ", ".join(parts),
        extra={
            "event": "email_sent" if decision.verdict is Verdict.SENT else "email_not_sent",
            "email_id": str(email_id),
            "mailbox": address,
            "outcome": decision.verdict.value,
            "error_code": decision.code,
            "smtp_reply": reply,
            "recipients": recipients,
            "refused": refused,
        },
    )
