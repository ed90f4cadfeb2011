"""Everything an engine needs to know about one mailbox, read in one short transaction.

``mailbox_context`` is the plain, frozen snapshot of the facts every decision needs:
settings, preferences, owner, cut-off. ``load_context`` adds what one channel's pass
needs and says, as a type, whether that pass can run::

    load_context(session, box, mailbox, channel)
        ├─▶ Runnable     may run; carries its decrypted ConnectionPlan
        ├─▶ NotRunnable  not approved, disabled, method none: nothing to do, no failure
        └─▶ Unusable     may run, but its connection cannot be planned (no password
                         stored, no host): the pass fails with that SyncError

The engine then talks to the server with no database transaction open. Must never be
kept beyond one pass: settings, credentials and approval change between passes.
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
from crmsync.crm.models.org import Organisation
from crmsync.crm.preferences import mailbox_preferences
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


@dataclass(frozen=True)
class Runnable(MailboxContext):
    """A channel that may run, with how to reach its server."""

    plan: ConnectionPlan


@dataclass(frozen=True)
class NotRunnable:
    """A channel with nothing to do now; ``why`` is for the operator."""

    mailbox: MailboxContext
    why: str


@dataclass(frozen=True)
class Unusable:
    """A channel that should run but cannot reach its server: a failed pass."""

    mailbox: MailboxContext
    error: SyncError


ChannelContext = Runnable | NotRunnable | Unusable


def _why_not(mailbox: Mailbox, channel: Channel, settings: OrganisationSettings) -> str:
    """Empty when the channel may run; otherwise why not."""
    if settings.process_email_only_for_approved and mailbox.approval is not Approval.APPROVED:
        return f"mailbox is {mailbox.approval.value}, not approved"
    method = mailbox.method_of(channel)
    if method in (IncomingMethod.NONE, SyncMethod.NONE, IncomingMethod.FORWARD_MAILBOX):
        return f"{channel.value} method is {method.value}"
    if not mailbox.channel(channel).enabled:
        return f"{channel.value} channel is disabled (run Test & Enable)"
    return ""


def _mailbox(session: Session, mailbox_id: uuid.UUID) -> Mailbox:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound("mailbox", mailbox_id)
    return mailbox


def organisation_settings(session: Session, mailbox: Mailbox) -> OrganisationSettings:
    organisation = session.get(Organisation, mailbox.organisation_id)
    assert organisation is not None
    return OrganisationSettings.model_validate(organisation.settings)


def facts(
    mailbox: Mailbox,
    *,
    settings: OrganisationSettings,
    preferences: TrackingPreferences,
    process_email_after: datetime | None,
    delete_after_processing: bool,
) -> MailboxContext:
    """The context of ``mailbox`` with what the caller read or decided."""
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
    )


def mailbox_context(session: Session, mailbox_id: uuid.UUID) -> MailboxContext:
    """What the engine knows of the mailbox under today's settings: no credentials."""
    mailbox = _mailbox(session, mailbox_id)
    profile = mailbox.profile
    return facts(
        mailbox,
        settings=organisation_settings(session, mailbox),
        preferences=mailbox_preferences(session, mailbox),
        process_email_after=profile.process_email_after if profile else None,
        delete_after_processing=mailbox.delete_after_processing,
    )


def load_context(
    session: Session, box: SecretBox, mailbox_id: uuid.UUID, channel: Channel
) -> ChannelContext:
    """Whether ``channel`` of the mailbox can run a pass now, and with what."""
    context = mailbox_context(session, mailbox_id)
    mailbox = _mailbox(session, mailbox_id)
    why_not = _why_not(mailbox, channel, context.settings)
    if why_not:
        return NotRunnable(context, why_not)
    try:
        plan = plan_for(mailbox, box)
    except SyncError as exc:
        return Unusable(context, exc)
    return Runnable(**vars(context), plan=plan)
