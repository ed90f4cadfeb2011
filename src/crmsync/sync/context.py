"""Everything an engine needs to know about one mailbox, read in one short transaction.

A plain, frozen snapshot: settings, preferences, owner, decrypted connection plan. The
engine then talks to the server with no database transaction open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from crmsync.core.errors import SyncError
from crmsync.core.types import Approval, Channel, IncomingMethod, SyncMethod
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Organisation, Queue, User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import OrganisationSettings, TrackingPreferences
from crmsync.sync.connection_plan import ConnectionPlan, plan_for


@dataclass(frozen=True)
class MailboxContext:
    mailbox_id: uuid.UUID
    organisation_id: uuid.UUID
    owner_id: uuid.UUID
    owning_business_unit_id: uuid.UUID
    queue_id: uuid.UUID | None
    address: str | None
    settings: OrganisationSettings
    preferences: TrackingPreferences
    process_email_after: datetime | None
    delete_after_processing: bool
    plan: ConnectionPlan | None
    plan_error: SyncError | None
    runnable: bool
    why_not: str


def _runnable(mailbox: Mailbox, channel: Channel, settings: OrganisationSettings) -> str:
    """Empty when the channel may run; otherwise why not."""
    if settings.process_email_only_for_approved and mailbox.approval is not Approval.APPROVED:
        return f"mailbox is {mailbox.approval.value}, not approved"
    method = mailbox.method_of(channel)
    if method in (IncomingMethod.NONE, SyncMethod.NONE, IncomingMethod.FORWARD_MAILBOX):
        return f"{channel.value} method is {method.value}"
    if not mailbox.channel(channel).enabled:
        return f"{channel.value} channel is disabled (run Test & Enable)"
    return ""


def load_context(
    session: Session, box: SecretBox, mailbox_id: uuid.UUID, channel: Channel
) -> MailboxContext:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound("mailbox", mailbox_id)
    organisation = session.get(Organisation, mailbox.organisation_id)
    assert organisation is not None
    settings = OrganisationSettings.model_validate(organisation.settings)
    owner_settings: dict[str, object] = {}
    if mailbox.user_id is not None:
        user = session.get(User, mailbox.user_id)
        owner_settings = user.settings if user is not None else {}
    elif mailbox.queue_id is not None:
        queue = session.get(Queue, mailbox.queue_id)
        owner_settings = queue.settings if queue is not None else {}
    preferences = TrackingPreferences.model_validate(owner_settings or {})
    why_not = _runnable(mailbox, channel, settings)
    plan: ConnectionPlan | None = None
    plan_error: SyncError | None = None
    if not why_not:
        try:
            plan = plan_for(mailbox, box)
        except SyncError as exc:
            plan_error = exc
    profile = mailbox.profile
    return snapshot(
        mailbox,
        settings=settings,
        preferences=preferences,
        process_email_after=profile.process_email_after if profile else None,
        delete_after_processing=mailbox.delete_after_processing,
        plan=plan,
        plan_error=plan_error,
        why_not=why_not,
    )


def snapshot(
    mailbox: Mailbox,
    *,
    settings: OrganisationSettings,
    preferences: TrackingPreferences,
    process_email_after: datetime | None,
    delete_after_processing: bool,
    plan: ConnectionPlan | None,
    plan_error: SyncError | None,
    why_not: str,
) -> MailboxContext:
    """The context of ``mailbox`` with what the caller read or decided; it may run when
    ``why_not`` is empty."""
    return MailboxContext(
        mailbox_id=mailbox.id,
        organisation_id=mailbox.organisation_id,
        owner_id=mailbox.owner_id,
        owning_business_unit_id=mailbox.owning_business_unit_id,
        queue_id=mailbox.queue_id,
        address=mailbox.email_address,
        settings=settings,
        preferences=preferences,
        process_email_after=process_email_after,
        delete_after_processing=delete_after_processing,
        plan=plan,
        plan_error=plan_error,
        runnable=not why_not,
        why_not=why_not,
    )
