"""Email server profiles, mailboxes, approval, Test & Enable, alerts, item failures, queues."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select

from crmsync.api.deps import (
    BriefPrincipal,
    CurrentPrincipal,
    SecretBoxDep,
    SessionDep,
    StoreDep,
)
from crmsync.api.routes.records import CursorQuery, LimitQuery
from crmsync.api.schemas import mail as schemas
from crmsync.api.schemas.common import Page
from crmsync.core.types import AlertSeverity, Approval, Privilege
from crmsync.crm import access, alerts, directory, mailboxes, profiles
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import EmailServerProfile, Mailbox, MailboxTest
from crmsync.crm.models.org import Queue
from crmsync.crm.setup import root_business_unit
from crmsync.sync.check_enable import check_and_enable

router = APIRouter()
PROFILES = "/email-server-profiles"


def _profile(session: SessionDep, principal: CurrentPrincipal, profile_id: uuid.UUID) -> Any:
    profile = session.get(EmailServerProfile, profile_id)
    if profile is None:
        raise NotFound("email_server_profile", profile_id)
    access.require(session, principal, profile, Privilege.READ)
    return profile


@router.post(PROFILES, response_model=schemas.ProfilePublic, status_code=201, tags=["profiles"])
def create_profile(
    body: schemas.ProfileCreate, session: SessionDep, principal: CurrentPrincipal, box: SecretBoxDep
) -> schemas.ProfilePublic:
    values = {"name": body.name, "server_type": body.server_type, **body.values(exclude_unset=True)}
    return schemas.ProfilePublic.of(profiles.create_profile(session, principal, values, box))


@router.get(PROFILES, response_model=list[schemas.ProfilePublic], tags=["profiles"])
def list_profiles(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.ProfilePublic]:
    query = select(EmailServerProfile).where(access.visible(EmailServerProfile, principal))
    return [
        schemas.ProfilePublic.of(p)
        for p in session.scalars(query.order_by(EmailServerProfile.name))
    ]


@router.get(PROFILES + "/{profile_id}", response_model=schemas.ProfilePublic, tags=["profiles"])
def get_profile(
    profile_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> schemas.ProfilePublic:
    return schemas.ProfilePublic.of(_profile(session, principal, profile_id))


@router.patch(PROFILES + "/{profile_id}", response_model=schemas.ProfilePublic, tags=["profiles"])
def update_profile(
    profile_id: uuid.UUID,
    body: schemas.ProfileUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
    box: SecretBoxDep,
) -> schemas.ProfilePublic:
    profile = _profile(session, principal, profile_id)
    values = body.values(exclude_unset=True)
    updated = profiles.update_profile(session, principal, profile, values, box)
    return schemas.ProfilePublic.of(updated)


@router.delete(PROFILES + "/{profile_id}", status_code=204, tags=["profiles"])
def delete_profile(
    profile_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    profile = _profile(session, principal, profile_id)
    access.require(session, principal, profile, Privilege.DELETE)
    for mailbox in session.scalars(select(Mailbox).where(Mailbox.profile_id == profile.id)):
        mailboxes.disable_all_channels(mailbox)
    session.delete(profile)
    return Response(status_code=204)


@router.get("/mailboxes", response_model=Page[schemas.MailboxPublic], tags=["mailboxes"])
def list_mailboxes(
    session: SessionDep,
    principal: CurrentPrincipal,
    approval: Approval | None = None,
    cursor: str | None = CursorQuery,
    limit: int = LimitQuery,
) -> Any:
    return mailboxes.list_mailboxes(
        session, principal, cursor=cursor, limit=limit, approval=approval
    )


@router.get("/mailboxes/{mailbox_id}", response_model=schemas.MailboxPublic, tags=["mailboxes"])
def get_mailbox(mailbox_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Mailbox:
    return mailboxes.get_mailbox(session, principal, mailbox_id)


@router.patch("/mailboxes/{mailbox_id}", response_model=schemas.MailboxPublic, tags=["mailboxes"])
def update_mailbox(
    mailbox_id: uuid.UUID,
    body: schemas.MailboxUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
    box: SecretBoxDep,
) -> Mailbox:
    mailbox = mailboxes.get_mailbox(session, principal, mailbox_id)
    return mailboxes.update_mailbox(session, principal, mailbox, body.values(), box)


@router.post(
    "/mailboxes/{mailbox_id}/approve", response_model=schemas.MailboxPublic, tags=["mailboxes"]
)
def approve_mailbox(
    mailbox_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> Mailbox:
    mailbox = mailboxes.get_mailbox(session, principal, mailbox_id)
    return mailboxes.set_approval(session, principal, mailbox, Approval.APPROVED)


@router.post(
    "/mailboxes/{mailbox_id}/reject", response_model=schemas.MailboxPublic, tags=["mailboxes"]
)
def reject_mailbox(
    mailbox_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> Mailbox:
    mailbox = mailboxes.get_mailbox(session, principal, mailbox_id)
    return mailboxes.set_approval(session, principal, mailbox, Approval.REJECTED)


@router.post(
    "/mailboxes/{mailbox_id}/test-enable",
    response_model=schemas.MailboxTestPublic,
    tags=["mailboxes"],
    summary="Test & Enable: check every channel against the real servers",
)
def test_enable(
    mailbox_id: uuid.UUID, store: StoreDep, principal: BriefPrincipal, box: SecretBoxDep
) -> MailboxTest:
    with store.transaction() as session:
        mailboxes.get_mailbox(session, principal, mailbox_id, Privilege.WRITE)
    return check_and_enable(store, box, mailbox_id)


@router.get(
    "/mailboxes/{mailbox_id}/tests",
    response_model=list[schemas.MailboxTestPublic],
    tags=["mailboxes"],
)
def list_tests(
    mailbox_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> Sequence[MailboxTest]:
    mailboxes.get_mailbox(session, principal, mailbox_id)
    query = select(MailboxTest).where(MailboxTest.mailbox_id == mailbox_id)
    return session.scalars(query.order_by(MailboxTest.started_at.desc()).limit(20)).all()


@router.get(
    "/mailboxes/{mailbox_id}/failures",
    response_model=Page[schemas.ItemFailurePublic],
    tags=["mailboxes"],
)
def list_failures(
    mailbox_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    cursor: str | None = CursorQuery,
    limit: int = LimitQuery,
) -> Any:
    mailbox = mailboxes.get_mailbox(session, principal, mailbox_id)
    return alerts.item_failures(session, mailbox, cursor=cursor, limit=limit)


@router.get("/alerts", response_model=Page[schemas.AlertPublic], tags=["alerts"])
def list_alerts(
    session: SessionDep,
    principal: CurrentPrincipal,
    mailbox_id: uuid.UUID | None = None,
    severity: AlertSeverity | None = None,
    cursor: str | None = CursorQuery,
    limit: int = LimitQuery,
) -> Any:
    return alerts.visible_alerts(
        session, principal, mailbox_id=mailbox_id, severity=severity, cursor=cursor, limit=limit
    )


@router.get("/queues", response_model=list[schemas.QueuePublic], tags=["queues"])
def list_queues(session: SessionDep, principal: CurrentPrincipal) -> Sequence[Queue]:
    return directory.list_in_org(session, principal, Queue)


@router.post("/queues", response_model=schemas.QueuePublic, status_code=201, tags=["queues"])
def create_queue(
    body: schemas.QueueCreate, session: SessionDep, principal: CurrentPrincipal
) -> Queue:
    unit = body.business_unit_id or root_business_unit(session, principal.organisation_id).id
    return directory.create_queue(
        session,
        principal,
        name=body.name,
        email=body.email,
        business_unit_id=unit,
        owner_id=body.owner_id,
    )
