"""Mailboxes: one per user and per queue, their methods, approval and credentials.

Rules enforced here, each refused with a rule code naming the field:
  * exactly one mailbox per user and per queue, created with the user or queue;
  * appointments/contacts/tasks by server-side sync is refused for POP3 profiles;
  * "delete messages after processing" only for queue and forward mailboxes;
  * changing the email address sends the mailbox back to approval and disables its
    channels (the new address must be approved and tested);
  * only administrators (organisation-wide write on mailboxes) approve or reject, and
    only they change a mailbox's email address: with a profile's own credentials
    (impersonation) the address is whose mail crmsync reads;
  * choosing a profile needs the right to read it and to use it (append-to on the
    profile); when anyone but an administrator chooses one, the mailbox goes back to
    approval, so a profile's credentials are never used for a mailbox nobody approved.

Owners may read and change their own mailbox's methods and credentials; credentials are
write-only (never returned) and stored encrypted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.alerts import AlertCode
from crmsync.core.types import (
    Approval,
    Channel,
    IncomingMethod,
    Privilege,
    RecordType,
    ServerType,
    SyncMethod,
)
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.alerts import resolve_alerts
from crmsync.crm.db import utcnow
from crmsync.crm.errors import Forbidden, InvalidReference, NotFound, RuleViolation
from crmsync.crm.models.mail import Alert, EmailServerProfile, Mailbox, MailboxChannel
from crmsync.crm.models.org import Queue, User
from crmsync.crm.pagination import Page, paginate
from crmsync.crm.secrets import SecretBox

CREDENTIAL_FIELDS = {
    "password": "password_ciphertext",
    "oauth_refresh_token": "oauth_refresh_token_ciphertext",
}


def default_profile(session: Session, organisation_id: Any) -> EmailServerProfile | None:
    return session.scalar(
        select(EmailServerProfile).where(
            EmailServerProfile.organisation_id == organisation_id,
            EmailServerProfile.is_default.is_(True),
        )
    )


def create_mailbox_for(
    session: Session, *, user: User | None = None, queue: Queue | None = None
) -> Mailbox:
    """The mailbox every new user and queue gets: default profile, approval pending."""
    if (user is None) == (queue is None):
        raise ValueError("a mailbox belongs to exactly one user or one queue")
    if user is not None:
        owner_id, unit_id, organisation_id = user.id, user.business_unit_id, user.organisation_id
        name = user.full_name or user.username
        address = user.email_addresses[0] if user.email_addresses else None
    else:
        assert queue is not None
        owner_id, unit_id, organisation_id = (
            queue.owner_id,
            queue.business_unit_id,
            queue.organisation_id,
        )
        name, address = queue.name, queue.email
    profile = default_profile(session, organisation_id)
    mailbox = Mailbox(
        organisation_id=organisation_id,
        owner_id=owner_id,
        owning_business_unit_id=unit_id,
        name=name,
        user_id=user.id if user is not None else None,
        queue_id=queue.id if queue is not None else None,
        profile_id=profile.id if profile is not None else None,
        email_address=address,
        incoming_method=IncomingMethod.SERVER_SIDE_SYNC,
        outgoing_method=SyncMethod.SERVER_SIDE_SYNC,
        act_method=SyncMethod.NONE,
        approval=Approval.PENDING,
        channels=[MailboxChannel(channel=channel) for channel in Channel],
    )
    session.add(mailbox)
    session.flush()
    return mailbox


def get_mailbox(
    session: Session,
    principal: Principal,
    mailbox_id: Any,
    privilege: Privilege = Privilege.READ,
) -> Mailbox:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound("mailbox", mailbox_id)
    access.require(session, principal, mailbox, privilege)
    return mailbox


def list_mailboxes(
    session: Session,
    principal: Principal,
    *,
    cursor: str | None = None,
    limit: int = 50,
    approval: Approval | None = None,
) -> Page[Mailbox]:
    query = select(Mailbox).where(access.visible(Mailbox, principal))
    if approval is not None:
        query = query.where(Mailbox.approval == approval)
    return paginate(session, query, Mailbox.created_at, Mailbox.id, cursor=cursor, limit=limit)


def _usable_profile(session: Session, principal: Principal, profile_id: Any) -> EmailServerProfile:
    """The profile, if the principal may read it and use it for a mailbox."""
    profile = session.get(EmailServerProfile, profile_id)
    if profile is None or not access.can(session, principal, profile, Privilege.READ):
        raise InvalidReference("profile_id names no email server profile", field="profile_id")
    if not access.can(session, principal, profile, Privilege.APPEND_TO):
        raise Forbidden(
            "You may not use this email server profile for a mailbox", privilege="append_to"
        )
    return profile


def is_mailbox_administrator(principal: Principal) -> bool:
    return principal.is_admin_of(RecordType.MAILBOX, Privilege.WRITE)


def check_rules(mailbox: Mailbox) -> None:
    profile = mailbox.profile
    if (
        mailbox.act_method is SyncMethod.SERVER_SIDE_SYNC
        and profile is not None
        and profile.server_type is ServerType.POP3_SMTP
    ):
        raise RuleViolation(
            "METHOD_NOT_SUPPORTED",
            "POP3 has no appointments, contacts or tasks: choose another profile or "
            "act_method none",
            field="act_method",
        )
    if mailbox.delete_after_processing and not (
        mailbox.queue_id is not None or mailbox.incoming_method is IncomingMethod.FORWARD_MAILBOX
    ):
        raise RuleViolation(
            "DELETE_NOT_ALLOWED",
            "Deleting messages after processing is only for queue and forward mailboxes",
            field="delete_after_processing",
        )


def disable_all_channels(mailbox: Mailbox) -> None:
    for channel in mailbox.channels:
        channel.enabled = False


def update_mailbox(
    session: Session,
    principal: Principal,
    mailbox: Mailbox,
    values: dict[str, Any],
    box: SecretBox,
) -> Mailbox:
    access.require(session, principal, mailbox, Privilege.WRITE)
    administrator = is_mailbox_administrator(principal)
    values = dict(values)
    if "profile_id" in values:
        profile_id = values.pop("profile_id")
        if profile_id != mailbox.profile_id:
            chosen = _usable_profile(session, principal, profile_id) if profile_id else None
            mailbox.profile = chosen
            disable_all_channels(mailbox)
            if not administrator:
                mailbox.approval = Approval.PENDING
    for name, column in CREDENTIAL_FIELDS.items():
        if name in values:
            setattr(mailbox, column, box.encrypt_optional(values.pop(name)))
            disable_all_channels(mailbox)
    new_address = values.get("email_address")
    if "email_address" in values and new_address != mailbox.email_address:
        if not administrator:
            raise Forbidden(
                "Only an administrator changes a mailbox's email address", privilege="write"
            )
        mailbox.approval = Approval.PENDING
        disable_all_channels(mailbox)
    for name, value in values.items():
        setattr(mailbox, name, value)
    for channel in Channel:
        if mailbox.method_of(channel) in (SyncMethod.NONE, IncomingMethod.NONE):
            mailbox.channel(channel).enabled = False
    check_rules(mailbox)
    session.flush()
    return mailbox


def set_approval(
    session: Session, principal: Principal, mailbox: Mailbox, approval: Approval
) -> Mailbox:
    access.require(session, principal, mailbox, Privilege.READ)
    if not is_mailbox_administrator(principal):
        raise Forbidden("Only administrators approve or reject mailboxes", privilege="write")
    mailbox.approval = approval
    if approval is not Approval.APPROVED:
        disable_all_channels(mailbox)
    else:
        # "Test passed; the mailbox awaits approval" has been answered.
        resolve_alerts(
            session,
            select(Alert).where(
                Alert.mailbox_id == mailbox.id, Alert.code == AlertCode.APPROVAL_PENDING
            ),
            "the mailbox was approved",
            utcnow(),
        )
    session.flush()
    return mailbox
