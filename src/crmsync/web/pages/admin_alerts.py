"""Alerts and the triage queue of item failures, for administrators.

    GET  /admin/alerts                         the alert wall: live ones (open first, by
                                               severity); ?show=history for the closed
    POST /admin/alerts/{id}/acknowledge        someone is on it
    POST /admin/alerts/{id}/dismiss            not a problem
    GET  /admin/triage                         items not tracked: failures and unknown
                                               senders; ?show=resolved for the history
    POST /admin/triage/{kind}/{id}/retry       re-run through the engine
    POST /admin/triage/{kind}/{id}/contact     create the sender's contact, then re-run
    POST /admin/triage/{kind}/{id}/regarding   track by hand with a regarding record
    GET  /admin/triage/{kind}/{id}/regarding/options   records to choose (htmx)
    POST /admin/triage/{kind}/{id}/ignore      leave it, saying who decided

Alert actions answer htmx with the alert's card, others with a redirect and a flash;
triage actions always redirect (the item leaves the queue). The work is crm/alerts.py's
and sync/triage.py's, through the viewer's principal.

Must never show or change an alert or item the viewer's principal cannot see (404, as
for anything else), and never answer a non-administrator anything but the 404 page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.api.deps import SessionDep, StoreDep
from crmsync.core.types import CUSTOMER_RECORD_TYPES, AlertState, RecordType
from crmsync.crm import alerts as alert_service
from crmsync.crm import search as search_service
from crmsync.crm.errors import CrmError, InvalidReference, NotFound
from crmsync.crm.models.mail import Alert, EmailServerProfile, Mailbox
from crmsync.crm.models.org import User
from crmsync.sync import triage
from crmsync.sync.triage import ItemKind
from crmsync.web import flash
from crmsync.web.deps import AdminViewer, Viewer
from crmsync.web.templating import email_url, render

router = APIRouter(include_in_schema=False)

ALERT_VIEWS: dict[str, tuple[AlertState, ...]] = {
    "live": alert_service.LIVE,
    "history": alert_service.CLOSED,
}


def _kind(value: str) -> ItemKind:
    try:
        return ItemKind(value)
    except ValueError as exc:
        raise NotFound("item", value[:100]) from exc


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request"))


def _names(session: Session, alerts: list[Alert]) -> dict[uuid.UUID, str]:
    """Mailbox, profile and people names the cards show, in three queries."""
    mailbox_ids = {a.mailbox_id for a in alerts if a.mailbox_id}
    profile_ids = {a.profile_id for a in alerts if a.profile_id}
    user_ids = {u for a in alerts for u in (a.acknowledged_by_id, a.dismissed_by_id) if u}
    names: dict[uuid.UUID, str] = {}
    if mailbox_ids:
        rows = session.execute(select(Mailbox.id, Mailbox.name).where(Mailbox.id.in_(mailbox_ids)))
        names.update({row[0]: row[1] for row in rows})
    if profile_ids:
        rows = session.execute(
            select(EmailServerProfile.id, EmailServerProfile.name).where(
                EmailServerProfile.id.in_(profile_ids)
            )
        )
        names.update({row[0]: row[1] for row in rows})
    if user_ids:
        for user in session.scalars(select(User).where(User.id.in_(user_ids))):
            names[user.id] = user.full_name or user.username
    return names


@router.get("/admin/alerts")
def alerts_page(
    request: Request,
    viewer: AdminViewer,
    session: SessionDep,
    show: Annotated[str, Query(max_length=20)] = "live",
) -> Response:
    view = show if show in ALERT_VIEWS else "live"
    wall = alert_service.alert_wall(session, viewer.principal, ALERT_VIEWS[view])
    context = {"alerts": wall, "names": _names(session, wall), "view": view, "nav": "admin"}
    return render(request, "admin/alerts.html", context)


def _alert_action(
    request: Request, viewer: Viewer, session: Session, alert: Alert, text: str
) -> Response:
    if not _is_htmx(request):
        response = RedirectResponse("/admin/alerts", status_code=303)
        flash.add(request, response, text, level="success")
        return response
    context = {"alert": alert, "names": _names(session, [alert]), "changed": text}
    return render(request, "admin/_alert.html", context)


@router.post("/admin/alerts/{alert_id:uuid}/acknowledge")
def acknowledge(
    request: Request, alert_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    alert = alert_service.acknowledge_alert(session, viewer.principal, alert_id)
    return _alert_action(request, viewer, session, alert, "Alert acknowledged")


@router.post("/admin/alerts/{alert_id:uuid}/dismiss")
def dismiss(
    request: Request, alert_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    alert = alert_service.dismiss_alert(session, viewer.principal, alert_id)
    return _alert_action(request, viewer, session, alert, "Alert dismissed")


# -- triage -------------------------------------------------------------------------------


@router.get("/admin/triage")
def triage_page(
    request: Request,
    viewer: AdminViewer,
    session: SessionDep,
    store: StoreDep,
    show: Annotated[str, Query(max_length=20)] = "open",
) -> Response:
    resolved = show == "resolved"
    items = triage.triage_queue(session, store, viewer.principal, resolved=resolved)
    context = {"items": items, "view": "resolved" if resolved else "open", "nav": "admin"}
    return render(request, "admin/triage.html", context)


def _done(request: Request, text: str, level: flash.Level = "success") -> Response:
    response = RedirectResponse("/admin/triage", status_code=303)
    flash.add(request, response, text, level=level)
    return response


def _outcome(request: Request, outcome: triage.Rerun) -> Response:
    if outcome.email_id is not None:
        # Straight to the tracked email: seeing it is the proof the fix worked.
        response = RedirectResponse(email_url(outcome.email_id), status_code=303)
        flash.add(request, response, "Email tracked", level="success")
        return response
    if outcome.failed:
        return _done(request, f"It failed again: {outcome.reason}", "error")
    return _done(request, f"Processed, not tracked: {outcome.reason}", "warning")


def _rerun(request: Request, session: Session, act: Callable[[], triage.Rerun]) -> Response:
    """Run a triage action in a savepoint (a refusal leaves nothing half-done) and say how
    it went: a NotFound stays a 404 (raised on), any other refusal is said on the queue."""
    try:
        with session.begin_nested():
            outcome = act()
    except NotFound:
        raise
    except CrmError as exc:
        return _done(request, exc.detail, "error")
    return _outcome(request, outcome)


@router.post("/admin/triage/{kind}/{item_id:uuid}/retry")
def retry(
    request: Request,
    kind: str,
    item_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    store: StoreDep,
) -> Response:
    return _rerun(
        request,
        session,
        lambda: triage.retry(session, store, viewer.principal, _kind(kind), item_id),
    )


@router.post("/admin/triage/{kind}/{item_id:uuid}/contact")
def create_contact(
    request: Request,
    kind: str,
    item_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    store: StoreDep,
) -> Response:
    return _rerun(
        request,
        session,
        lambda: triage.create_contact_and_rerun(
            session, store, viewer.principal, _kind(kind), item_id
        ),
    )


def _chosen(value: str) -> tuple[RecordType, uuid.UUID]:
    """``'account:<uuid>'`` → ``(ACCOUNT, uuid)``; InvalidReference for anything else."""
    kind, _, raw_id = value.partition(":")
    try:
        chosen = RecordType(kind), uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidReference("Choose a record", field="record") from exc
    if chosen[0] not in CUSTOMER_RECORD_TYPES:
        raise InvalidReference("Choose a record", field="record")
    return chosen


@router.get("/admin/triage/{kind}/{item_id:uuid}/regarding/options")
def regarding_options(
    request: Request,
    kind: str,
    item_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    find: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    hits = search_service.search(session, viewer.principal, find, limit=8)
    context = {"kind": _kind(kind).value, "item_id": item_id, "find": find}
    return render(request, "admin/_triage_regarding.html", {**context, "hits": hits})


@router.post("/admin/triage/{kind}/{item_id:uuid}/regarding")
def regarding(
    request: Request,
    kind: str,
    item_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    store: StoreDep,
    record: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    return _rerun(
        request,
        session,
        lambda: triage.track_with_regarding(
            session, store, viewer.principal, _kind(kind), item_id, _chosen(record)
        ),
    )


@router.post("/admin/triage/{kind}/{item_id:uuid}/ignore")
def ignore(
    request: Request, kind: str, item_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    triage.ignore(session, viewer.principal, _kind(kind), item_id)
    return _done(request, "Ignored: it stays untracked")
