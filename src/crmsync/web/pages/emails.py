"""The email page: a tracked email, why it was tracked, and what a person does to it.

    GET  /emails/{id}                          the page (the email's permalink)
    GET  /emails/{id}/body[?images=remote]     the body, its own sandboxed document
    GET  /emails/{id}/frame[?images=remote]    the iframe element (htmx: show remote images)
    GET  /emails/{id}/attachments/{att}        an attachment, downloaded
    GET  /emails/{id}/regarding/options?find=  records to choose as regarding (htmx)
    POST /emails/{id}/regarding                set (``record=<type>:<id>``) or clear it
    POST /emails/{id}/resolve                  an unresolved address → a contact or lead
    POST /emails/{id}/untrack                  untrack; answers the "untracked" panel
    POST /emails/track                         track a mailbox's message again (``ledger_id``)
    POST /emails/{id}/reply                    a reply, queued for the outgoing engine
    GET  /emails/{id}/delivery                 the delivery state of an outgoing email (htmx)

Every read and write is the crm/ services' (crm/activities.py, crm/email_context.py,
crm/email_actions.py, crm/search.py, crm/outbound.py, sync/manual_track.py), with the
viewer's principal: an email the viewer cannot read — or an id that is no id — is a 404
page, for the page, its body, its attachments and every action alike. A form works
without htmx (POST, then a redirect back to the page); with htmx (``HX-Request``) an
action answers the part of the page it changed.

The body is never part of the page: it is its own document, in a sandboxed iframe,
with its own Content-Security-Policy (web/email_body.py). Must never serve an
attachment inline unless it is a plain raster image, and never show the body's HTML in
the page's own origin.
"""

from __future__ import annotations

import uuid
from email.utils import getaddresses
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from crmsync.api.deps import SessionDep, StoreDep
from crmsync.core.addresses import normalise_address
from crmsync.core.types import (
    CUSTOMER_RECORD_TYPES,
    CorrelationMethod,
    Direction,
    EmailStatus,
    Participation,
    Privilege,
    RecordType,
)
from crmsync.crm import access, email_actions, email_context, outbound
from crmsync.crm.activities import PartySpec, create_activity, get_activity
from crmsync.crm.errors import CrmError, InvalidReference, NotFound
from crmsync.crm.models.activities import Attachment, Email
from crmsync.crm.search import search
from crmsync.crm.store import Store
from crmsync.sync import manual_track
from crmsync.tracking.parse import MalformedMessage, ParseLimits, parse_message
from crmsync.web import flash
from crmsync.web.deps import CurrentViewer, Viewer
from crmsync.web.email_body import (
    LINK_SANDBOX,
    SAFE_IMAGE_TYPES,
    BodyDocument,
    InlineImage,
    body_document,
    download_type,
    has_remote_images,
    human_size,
    text_document,
)
from crmsync.web.security import CSP_HEADER, csp
from crmsync.web.templating import email_url, render

router = APIRouter(include_in_schema=False)

REMOTE = "remote"
MAX_FIND = 200
MAX_REPLY_TEXT = 100_000
OUTGOING_STATES = (
    EmailStatus.PENDING_SEND,
    EmailStatus.SENDING,
    EmailStatus.SENT,
    EmailStatus.FAILED,
    EmailStatus.CANCELED,
)

# "Why was it tracked": a short name and a sentence per correlation method.
CORRELATION_NAMES: dict[CorrelationMethod, str] = {
    CorrelationMethod.IN_REPLY_TO: "In reply to",
    CorrelationMethod.TRACKING_TOKEN: "Tracking token",
    CorrelationMethod.CONVERSATION_INDEX: "Outlook conversation",
    CorrelationMethod.SMART_MATCHING: "Smart matching",
    CorrelationMethod.MANUAL: "By hand",
    CorrelationMethod.NONE: "Tracking options",
}
CORRELATION_WORDS: dict[CorrelationMethod, str] = {
    CorrelationMethod.IN_REPLY_TO: (
        "It answers an email crmsync had tracked: its In-Reply-To or References header "
        "names that email's Message-ID."
    ),
    CorrelationMethod.TRACKING_TOKEN: (
        "Its subject carries the tracking token of an email sent from crmsync."
    ),
    CorrelationMethod.CONVERSATION_INDEX: (
        "It belongs to the same Outlook conversation (Thread-Index) as an email crmsync "
        "had tracked."
    ),
    CorrelationMethod.SMART_MATCHING: (
        "Smart matching: its subject and participants match an email crmsync had tracked."
    ),
    CorrelationMethod.MANUAL: "A person chose what it regards, or tracked it by hand.",
    CorrelationMethod.NONE: (
        "It matched no earlier email: a mailbox's tracking options took it in (see the "
        "mailboxes below)."
    ),
}
WRITTEN_IN_CRM = "It was written in the CRM, not taken in from a mailbox."
STATUS_WORDS: dict[EmailStatus, str] = {
    EmailStatus.DRAFT: "Draft",
    EmailStatus.COMPLETED: "Completed",
    EmailStatus.RECEIVED: "Received",
    EmailStatus.PENDING_SEND: "Queued",
    EmailStatus.SENDING: "Sending",
    EmailStatus.SENT: "Sent",
    EmailStatus.FAILED: "Failed",
    EmailStatus.CANCELED: "Canceled",
}
PARTICIPATION_LABELS = (
    (Participation.FROM, "From"),
    (Participation.TO, "To"),
    (Participation.CC, "Cc"),
    (Participation.BCC, "Bcc"),
)
RESOLVE_AS = {"contact": RecordType.CONTACT, "lead": RecordType.LEAD}

FindQuery = Annotated[str, Query(max_length=1000)]
Images = Annotated[str, Query(max_length=20)]


# -- finding the email -------------------------------------------------------------------


def _id(value: str, what: str = "email") -> uuid.UUID:
    """A path's id, or NotFound (a malformed id is a page that is not there, as any)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(what, value[:100]) from exc


def _email(
    session: Session, viewer: Viewer, email_id: str, privilege: Privilege = Privilege.READ
) -> Email:
    return get_activity(session, viewer.principal, Email, _id(email_id), privilege)


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("HX-Request"))


def _back(request: Request, email_id: uuid.UUID, text: str | None = None) -> Response:
    """A non-htmx form's answer: back to the page, with ``text`` shown there."""
    response = RedirectResponse(email_url(email_id), status_code=303)
    if text:
        flash.add(request, response, text, level="success")
    return response


def _go(request: Request, url: str, text: str | None = None) -> Response:
    """Another page: htmx follows ``HX-Redirect``, a form its 303."""
    response: Response
    if _is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if text:
        flash.add(request, response, text, level="success")
    return response


# -- what the page shows -----------------------------------------------------------------


def _can_create(viewer: Viewer, record_type: RecordType) -> bool:
    return viewer.principal.depth(record_type, Privilege.CREATE) is not None


def _regarding_context(session: Session, viewer: Viewer, email: Email) -> dict[str, Any]:
    return {
        "email": email,
        "regarding": email_context.regarding(session, viewer.principal, email),
        "can_write": access.can(session, viewer.principal, email, Privilege.WRITE),
    }


def _parties_context(session: Session, viewer: Viewer, email: Email) -> dict[str, Any]:
    views = email_context.parties(session, viewer.principal, email)
    return {
        "email": email,
        "party_groups": [
            (label, [view for view in views if view.participation is role])
            for role, label in PARTICIPATION_LABELS
            if any(view.participation is role for view in views)
        ],
        "can_add_contact": _can_create(viewer, RecordType.CONTACT),
        "can_add_lead": _can_create(viewer, RecordType.LEAD),
    }


def _delivery_context(email: Email) -> dict[str, Any]:
    return {
        "email": email,
        "status_word": STATUS_WORDS.get(email.status, email.status.value),
        "sent_at": email.actual_end if email.status is EmailStatus.SENT else None,
    }


def _is_outgoing(email: Email) -> bool:
    return email.status in OUTGOING_STATES or email.bounced_at is not None


def _sender(email: Email) -> str:
    sender = next((p for p in email.parties if p.participation is Participation.FROM), None)
    return (sender.display_name or sender.address or "") if sender is not None else ""


def _conversation(email: Email, others: list[Email]) -> list[dict[str, Any]]:
    """The thread in time order, this email among them."""
    everyone = sorted([email, *others], key=lambda item: (item.occurred_at, str(item.id)))
    return [
        {"email": item, "sender": _sender(item), "current": item.id == email.id}
        for item in everyone
    ]


def _reply_defaults(email: Email) -> dict[str, str]:
    sender = next(
        (p for p in email.parties if p.participation is Participation.FROM and p.address), None
    )
    subject = email.subject.strip()
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}" if subject else "Re:"
    return {"to": sender.address or "" if sender else "", "subject": subject[:400], "text": ""}


def _page_context(
    request: Request,
    session: Session,
    viewer: Viewer,
    email: Email,
    *,
    remote_images: bool = False,
    find: str = "",
    reply: dict[str, str] | None = None,
    reply_error: str | None = None,
) -> dict[str, Any]:
    principal = viewer.principal
    why = email_context.explain_tracking(session, principal, email)
    find = find.strip()[:MAX_FIND]
    written_here = email.correlation_method is CorrelationMethod.NONE and not why.sightings
    return {
        **_regarding_context(session, viewer, email),
        **_parties_context(session, viewer, email),
        **_delivery_context(email),
        "nav": "",
        "why": why,
        "correlation_name": "Written in the CRM"
        if written_here
        else CORRELATION_NAMES[email.correlation_method],
        "correlation_words": WRITTEN_IN_CRM
        if written_here
        else CORRELATION_WORDS[email.correlation_method],
        "conversation": _conversation(email, email_context.thread(session, principal, email)),
        "attachments": [
            {
                "item": item,
                "size": human_size(item.size),
                "url": f"{email_url(email.id)}/attachments/{item.id}",
                "inline": download_type(item.content_type)[1],
            }
            for item in sorted(email.attachments, key=lambda a: (a.filename.lower(), a.id))
        ],
        "outgoing": _is_outgoing(email),
        "can_delete": access.can(session, principal, email, Privilege.DELETE),
        "can_reply": _can_create(viewer, RecordType.EMAIL),
        "reply": reply or _reply_defaults(email),
        "reply_error": reply_error,
        "remote_images": remote_images,
        "link_sandbox": LINK_SANDBOX,
        "has_remote_images": has_remote_images(email.description or ""),
        "find": find,
        "hits": search(session, principal, find, limit=10) if find else [],
    }


@router.get("/emails/{email_id}")
def email_page(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    images: Images = "",
    find: FindQuery = "",
) -> Response:
    email = _email(session, viewer, email_id)
    context = _page_context(
        request, session, viewer, email, remote_images=images == REMOTE, find=find
    )
    return render(request, "emails/page.html", context)


# -- the body ----------------------------------------------------------------------------


def _inline_images(store: Store, email: Email) -> dict[str, InlineImage]:
    """The email's inline image attachments by Content-ID, with their bytes."""
    found: dict[str, InlineImage] = {}
    for item in email.attachments:
        media = item.content_type.split(";", 1)[0].strip().lower()
        if not item.content_id or media not in SAFE_IMAGE_TYPES:
            continue
        try:
            data = store.blobs.get(item.blob_sha256)
        except OSError:
            continue  # a missing file shows as a held-back image, not as an error
        url = f"{email_url(email.id)}/attachments/{item.id}"
        found[item.content_id] = InlineImage(url, media, data)
    return found


def _original_html(store: Store, email: Email) -> str | None:
    """The message's own HTML, read again from its raw bytes: the stored description has
    lost its ``cid:`` references to the sanitizer. None when there is none to read."""
    if not email.raw_sha256:
        return None
    try:
        raw = store.blobs.get(email.raw_sha256)
        return parse_message(raw, ParseLimits(max_bytes=len(raw) + 1)).html_body
    except (OSError, MalformedMessage):
        return None


def _body(store: Store, email: Email, remote_images: bool) -> BodyDocument:
    inline = _inline_images(store, email)
    html = _original_html(store, email) if inline else None
    if html is None:
        html = email.description
    if not html.strip():
        return text_document(email.body_text)
    return body_document(html, inline=inline, remote_images=remote_images)


@router.get("/emails/{email_id}/body")
def email_body(
    email_id: str, viewer: CurrentViewer, session: SessionDep, store: StoreDep, images: Images = ""
) -> Response:
    email = _email(session, viewer, email_id)
    document = _body(store, email, images == REMOTE)
    return HTMLResponse(
        document.html,
        headers={
            CSP_HEADER: document.policy,
            "Cache-Control": "no-store",
            # Only the email page may frame it; never shown as a page of its own.
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


@router.get("/emails/{email_id}/frame")
def email_frame(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    images: Images = "",
) -> Response:
    email = _email(session, viewer, email_id)
    context = {
        "email": email,
        "remote_images": images == REMOTE,
        "has_remote_images": True,
        "link_sandbox": LINK_SANDBOX,
    }
    return render(request, "emails/_frame.html", context)


# -- attachments -------------------------------------------------------------------------


@router.get("/emails/{email_id}/attachments/{attachment_id}")
def attachment(
    email_id: str,
    attachment_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    store: StoreDep,
) -> Response:
    email = _email(session, viewer, email_id)
    wanted = _id(attachment_id, "attachment")
    item: Attachment | None = next((a for a in email.attachments if a.id == wanted), None)
    if item is None:
        raise NotFound("attachment", wanted)
    path = store.blobs.path_for(item.blob_sha256)
    if not path.is_file():
        raise NotFound("attachment", wanted)
    media, inline = download_type(item.content_type)
    return FileResponse(
        path,
        media_type=media,
        filename=item.filename or f"attachment-{item.id}",
        content_disposition_type="inline" if inline else "attachment",
        headers={
            # Opened by itself, it is still no page of ours: no scripts, no origin.
            CSP_HEADER: csp(default_src="'none'", img_src="data:", sandbox=""),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


# -- regarding ---------------------------------------------------------------------------


@router.get("/emails/{email_id}/regarding/options")
def regarding_options(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    find: FindQuery = "",
) -> Response:
    email = _email(session, viewer, email_id)
    query = find.strip()[:MAX_FIND]
    if not _is_htmx(request):
        target = email_url(email.id) + (f"?find={query}" if query else "")
        return RedirectResponse(target + "#regarding", status_code=303)
    hits = search(session, viewer.principal, query, limit=10) if query else []
    return render(
        request, "emails/_regarding_results.html", {"email": email, "find": query, "hits": hits}
    )


def _chosen(value: str) -> tuple[RecordType, uuid.UUID]:
    """``'account:<uuid>'`` → ``(ACCOUNT, uuid)``; InvalidReference for anything else."""
    kind, _, raw_id = value.partition(":")
    try:
        record_type = RecordType(kind)
        record_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidReference("Choose a record", field="record") from exc
    if record_type not in CUSTOMER_RECORD_TYPES:
        raise InvalidReference("Choose a record", field="record")
    return record_type, record_id


@router.post("/emails/{email_id}/regarding")
def set_regarding(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    record: Annotated[str, Form(max_length=100)] = "",
    clear: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    wanted = None if clear else _chosen(record)
    email = email_actions.set_regarding(session, viewer.principal, _id(email_id), wanted)
    if not _is_htmx(request):
        return _back(request, email.id, "Regarding cleared" if clear else "Regarding set")
    context = {**_regarding_context(session, viewer, email), "changed": True}
    return render(request, "emails/_regarding.html", context)


# -- parties -----------------------------------------------------------------------------


@router.post("/emails/{email_id}/resolve")
def resolve_address(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    address: Annotated[str, Form(max_length=320)],
    display_name: Annotated[str, Form(max_length=300)] = "",
    as_type: Annotated[str, Form(alias="as", max_length=20)] = "contact",
) -> Response:
    email = _email(session, viewer, email_id)
    record_type = RESOLVE_AS.get(as_type)
    if record_type is None:
        raise InvalidReference("An address becomes a contact or a lead", field="as")
    resolved = email_actions.resolve_address(
        session, viewer.principal, address, display_name, record_type
    )
    session.refresh(email)  # its parties were updated in SQL
    text = f"{address} is now a {record_type.value}"
    if not _is_htmx(request):
        return _back(request, email.id, text)
    context = {
        **_parties_context(session, viewer, email),
        "added": resolved.record.id,
        "added_text": text,
    }
    return render(request, "emails/_parties.html", context)


# -- untrack and track again -------------------------------------------------------------


@router.post("/emails/{email_id}/untrack")
def untrack(
    request: Request, email_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    email = _email(session, viewer, email_id, Privilege.DELETE)
    subject = email.subject
    sightings = email_context.explain_tracking(session, viewer.principal, email).sightings
    email_actions.untrack_email(session, viewer.principal, email.id)
    # Offered again only from a mailbox the viewer reads that kept the message's bytes.
    again = None
    for sighting in sightings:
        if not sighting.raw_kept:
            continue
        try:
            found = manual_track.find_sighting(session, viewer.principal, ledger_id=sighting.id)
        except NotFound:
            continue
        again = {"ledger_id": found.id, "mailbox": sighting.mailbox_name}
        break
    context = {"subject": subject, "again": again}
    template = "emails/_untracked.html" if _is_htmx(request) else "emails/untracked.html"
    return render(request, template, context)


@router.post("/emails/track")
def track_again(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    store: StoreDep,
    ledger_id: Annotated[str, Form(max_length=100)],
) -> Response:
    try:
        tracked = manual_track.track_message(
            session, store.blobs, viewer.principal, ledger_id=_id(ledger_id, "message")
        )
    except manual_track.AlreadyTracked as exc:
        if exc.email_id is None:
            raise
        return _go(request, email_url(exc.email_id), "This email is tracked already")
    return _go(request, email_url(tracked.email.id), "Email tracked")


# -- reply and delivery ------------------------------------------------------------------


def _recipients(value: str) -> list[tuple[str, str]]:
    """``'Ann <ann@x.example>, bob@y.example'`` → ``[('Ann', 'ann@x.example'), ('', …)]``."""
    found = [(name.strip(), address.strip()) for name, address in getaddresses([value])]
    people = [(name, address) for name, address in found if address]
    if not people or any(normalise_address(address) is None for _, address in people):
        raise InvalidReference("Write one or more email addresses, separated by commas", field="to")
    return people


def _reply(
    session: Session, viewer: Viewer, email: Email, to: str, subject: str, text: str
) -> Email:
    """A draft answering ``email`` (regarding what it regards), then asked to be sent:
    what ``POST /api/v1/emails`` and ``POST /api/v1/emails/{id}/send`` do."""
    regarding = email_context.regarding(session, viewer.principal, email)
    values: dict[str, Any] = {
        "subject": subject,
        "body_text": text,
        "direction": Direction.OUTGOING,
        "status": EmailStatus.DRAFT,
    }
    if regarding is not None:
        values |= {"regarding_type": regarding.record_type, "regarding_id": regarding.id}
    parties = [
        PartySpec(Participation.TO, address=address, display_name=name[:300])
        for name, address in _recipients(to)
    ]
    draft = create_activity(session, viewer.principal, Email, values, parties)
    return outbound.request_send(
        session,
        viewer.principal,
        draft,
        reply_to_email_id=email.id if email.message_id else None,
    )


@router.post("/emails/{email_id}/reply")
def reply(
    request: Request,
    email_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    to: Annotated[str, Form(max_length=2000)],
    subject: Annotated[str, Form(max_length=400)] = "",
    text: Annotated[str, Form(max_length=MAX_REPLY_TEXT)] = "",
) -> Response:
    email = _email(session, viewer, email_id)
    form = {"to": to, "subject": subject, "text": text}
    try:
        # A savepoint: a reply that cannot be sent leaves no draft behind.
        with session.begin_nested():
            sent = _reply(session, viewer, email, to, subject.strip(), text)
    except CrmError as exc:
        session.expire_all()
        if not _is_htmx(request):
            raise
        context = {"email": email, "reply": form, "reply_error": exc.detail, "open": True}
        return render(request, "emails/_reply.html", context, status=200)
    return _go(request, email_url(sent.id), "Reply queued: crmsync sends it from your mailbox")


@router.get("/emails/{email_id}/delivery")
def delivery(
    request: Request, email_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    email = _email(session, viewer, email_id)
    return render(request, "emails/_delivery.html", _delivery_context(email))
