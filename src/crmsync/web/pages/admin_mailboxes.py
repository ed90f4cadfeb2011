"""Mailbox health for administrators: every mailbox's channels, approval, the mailbox
form and Test & Enable from the page.

    GET  /admin/mailboxes?show=all|failing|pending   the table (admin_mailbox_health.py)
    POST /admin/mailboxes/{id}/approve | /reject      approval (CSRF), 303 back to the table
    GET  /admin/mailboxes/{id}                        channels, the form, the latest test
    POST /admin/mailboxes/{id}                        saves the form: 303, or 422 with
                                                      each error next to its field
    POST /admin/mailboxes/{id}/test                   starts Test & Enable in a thread
    GET  /admin/mailboxes/{id}/tests/{test_id}        the run's steps (htmx polls it every
                                                      500 ms until the run has finished)

Reads and changes go through crm/mailboxes.py with the viewer's principal, as the API's
routes do, so its rules hold here too (only administrators change an address or approve;
a new profile or credentials turn the channels off). Test & Enable is
``sync/check_enable.start_check`` in the request, then ``run_check`` in a thread of its
own; each step is committed as it finishes and the fragment reads them.

Must never hold a database transaction across a mail server's network I/O (the test
route is ``BriefAdminViewer`` and the check runs outside the request), never render a
stored credential, and never answer anything but the 404 page to a non-administrator.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.api.deps import SecretBoxDep, SessionDep, StoreDep
from crmsync.api.schemas.mail import MailboxUpdate
from crmsync.core.types import Approval, Privilege
from crmsync.crm import access, mailboxes
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import EmailServerProfile, Mailbox, MailboxTest
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.sync.check_enable import is_stale, planned_steps, run_check, start_check
from crmsync.web import flash
from crmsync.web.admin_forms import MAILBOX_SECTIONS, Parsed, parse, saved, shown_from
from crmsync.web.admin_mailbox_health import Show, build_rows, mailbox_rows, run_steps
from crmsync.web.deps import AdminViewer, BriefAdminViewer, Viewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

TABLE_PATH = "/admin/mailboxes"
FILTERS = (
    (Show.ALL, "All"),
    (Show.FAILING, "Failing"),
    (Show.PENDING, "Pending approval"),
)
RECENT_TESTS = 5


def mailbox_path(mailbox_id: uuid.UUID) -> str:
    return f"{TABLE_PATH}/{mailbox_id}"


@router.get(TABLE_PATH)
def mailbox_table(
    request: Request,
    viewer: AdminViewer,
    session: SessionDep,
    show: Annotated[Show, Query()] = Show.ALL,
) -> Response:
    rows = mailbox_rows(session, viewer.principal, show, utcnow())
    context = {"nav": "admin", "rows": rows, "show": show, "filters": FILTERS}
    return render(request, "admin/mailboxes.html", context)


def _back(show: str | None) -> str:
    try:
        chosen = Show(show or Show.ALL)
    except ValueError:
        chosen = Show.ALL
    return TABLE_PATH if chosen is Show.ALL else f"{TABLE_PATH}?show={chosen.value}"


async def _set_approval(
    request: Request, viewer: Viewer, session: Session, mailbox_id: uuid.UUID, approval: Approval
) -> Response:
    mailbox = mailboxes.get_mailbox(session, viewer.principal, mailbox_id)
    mailboxes.set_approval(session, viewer.principal, mailbox, approval)
    form = await request.form()
    back = form.get("back")
    target = mailbox_path(mailbox_id) if back == "mailbox" else _back(str(back or ""))
    response = RedirectResponse(target, status_code=303)
    word = "approved" if approval is Approval.APPROVED else "rejected"
    flash.add(request, response, f"{mailbox.name}'s mailbox {word}.", level="success")
    return response


@router.post(TABLE_PATH + "/{mailbox_id}/approve")
async def approve(
    request: Request, mailbox_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    return await _set_approval(request, viewer, session, mailbox_id, Approval.APPROVED)


@router.post(TABLE_PATH + "/{mailbox_id}/reject")
async def reject(
    request: Request, mailbox_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    return await _set_approval(request, viewer, session, mailbox_id, Approval.REJECTED)


def _profile_choices(session: Session, viewer: Viewer) -> tuple[tuple[str, str], ...]:
    query = select(EmailServerProfile).where(access.visible(EmailServerProfile, viewer.principal))
    found = session.scalars(query.order_by(EmailServerProfile.name)).all()
    return (("", "No profile"), *((str(p.id), p.name) for p in found))


def _latest_test(session: Session, mailbox_id: uuid.UUID) -> MailboxTest | None:
    query = select(MailboxTest).where(MailboxTest.mailbox_id == mailbox_id)
    return session.scalars(query.order_by(MailboxTest.started_at.desc()).limit(1)).first()


def _mailbox_context(
    session: Session, viewer: Viewer, mailbox: Mailbox, parsed: Parsed | None
) -> dict[str, Any]:
    now = utcnow()
    latest = _latest_test(session, mailbox.id)
    recent = session.scalars(
        select(MailboxTest)
        .where(MailboxTest.mailbox_id == mailbox.id, MailboxTest.finished_at.is_not(None))
        .order_by(MailboxTest.started_at.desc())
        .limit(RECENT_TESTS)
    ).all()
    return {
        "nav": "admin",
        "mailbox": mailbox,
        "row": build_rows(session, [mailbox], now)[0],
        "sections": MAILBOX_SECTIONS,
        "choices": {"profile_id": _profile_choices(session, viewer)},
        "shown": parsed.shown if parsed else shown_from(mailbox, MAILBOX_SECTIONS),
        "errors": parsed.errors if parsed else {},
        "secrets_set": {
            "password": bool(mailbox.password_ciphertext),
            "oauth_refresh_token": bool(mailbox.oauth_refresh_token_ciphertext),
        },
        "can_approve": mailboxes.is_mailbox_administrator(viewer.principal),
        "run": _run_context(mailbox, latest, now),
        "recent": recent,
    }


def _run_context(mailbox: Mailbox, run: MailboxTest | None, now: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    steps = run_steps(run, planned_steps(mailbox), now)
    # Running until recorded as finished: the channels' outcome is written with the end.
    running = run.finished_at is None and not is_stale(run, now)
    return {"test": run, "steps": steps, "running": running, "mailbox_id": mailbox.id}


@router.get(TABLE_PATH + "/{mailbox_id}")
def mailbox_page(
    request: Request, mailbox_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    mailbox = mailboxes.get_mailbox(session, viewer.principal, mailbox_id)
    context = _mailbox_context(session, viewer, mailbox, None)
    return render(request, "admin/mailbox_page.html", context)


@router.post(TABLE_PATH + "/{mailbox_id}")
async def save_mailbox(
    request: Request,
    mailbox_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    box: SecretBoxDep,
) -> Response:
    mailbox = mailboxes.get_mailbox(session, viewer.principal, mailbox_id, Privilege.WRITE)
    form = await request.form()
    parsed = parse(MAILBOX_SECTIONS, form, schema=MailboxUpdate, creating=False)
    if not parsed.errors:
        saved(
            session,
            parsed,
            lambda: mailboxes.update_mailbox(
                session, viewer.principal, mailbox, parsed.values, box
            ),
        )
        if parsed.errors:  # refused: show what is stored, with the error
            session.refresh(mailbox)
    if parsed.errors:
        context = _mailbox_context(session, viewer, mailbox, parsed)
        return render(request, "admin/mailbox_page.html", context, status=422)
    response = RedirectResponse(mailbox_path(mailbox_id), status_code=303)
    flash.add(request, response, "Mailbox saved.", level="success")
    return response


def _run_in_background(store: Store, box: SecretBox, test_id: uuid.UUID) -> None:
    def run() -> None:
        # run_check has logged any failure and closed the run; nobody waits on the thread.
        with contextlib.suppress(Exception):
            run_check(store, box, test_id)

    threading.Thread(target=run, name=f"test-enable-{test_id}", daemon=True).start()


@router.post(TABLE_PATH + "/{mailbox_id}/test")
def start_test(
    request: Request,
    mailbox_id: uuid.UUID,
    viewer: BriefAdminViewer,
    store: StoreDep,
    box: SecretBoxDep,
) -> Response:
    with store.transaction() as session:
        mailboxes.get_mailbox(session, viewer.principal, mailbox_id, Privilege.WRITE)
    test_id = start_check(store, mailbox_id)
    _run_in_background(store, box, test_id)
    if not request.headers.get("HX-Request"):
        return RedirectResponse(mailbox_path(mailbox_id), status_code=303)
    return _test_fragment(request, store, viewer, mailbox_id, test_id)


def _test_fragment(
    request: Request, store: Store, viewer: Viewer, mailbox_id: uuid.UUID, test_id: uuid.UUID
) -> Response:
    with store.transaction() as session:
        mailbox = mailboxes.get_mailbox(session, viewer.principal, mailbox_id)
        run = session.get(MailboxTest, test_id)
        if run is None or run.mailbox_id != mailbox.id:
            raise NotFound("mailbox_test", test_id)
        now = utcnow()
        context = {
            "run": _run_context(mailbox, run, now),
            "row": build_rows(session, [mailbox], now)[0],
            "mailbox": mailbox,
        }
        return render(request, "admin/mailbox_test.html", context)


@router.get(TABLE_PATH + "/{mailbox_id}/tests/{test_id}")
def test_steps(
    request: Request,
    mailbox_id: uuid.UUID,
    test_id: uuid.UUID,
    viewer: BriefAdminViewer,
    store: StoreDep,
) -> Response:
    return _test_fragment(request, store, viewer, mailbox_id, test_id)
