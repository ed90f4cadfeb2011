"""Record pages: an account, contact, lead, opportunity or case, with its timeline.

    GET /accounts/<uuid>             the record's details, related records, timeline
    GET /accounts/<uuid>?cursor=…    the same, the timeline starting at an older page
    GET /accounts/<uuid>/timeline?cursor=…
                                     the next page of the timeline as list items (htmx
                                     puts them in place of the "Older" link); without
                                     htmx it redirects to the page above

and the same under ``/contacts``, ``/leads``, ``/opportunities`` and ``/cases``. The id
is matched as a UUID in the route itself, so a malformed one is no route: the HTML 404
page, the same as a record that does not exist or that the viewer may not read.

Everything shown is read through crm/ with the viewer's principal: the record through
``records.get_record``, related records through ``records.list_records``, the timeline
through ``timeline.timeline`` (whose "via" names only records the viewer may read), and
a regarding record or a parent account only when ``get_record`` lets the viewer read it.

Must never show a record, a name or a link the viewer could not open through the API,
and never render a description but through ``|safe_html``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from crmsync.api.deps import SessionDep
from crmsync.crm import directory
from crmsync.crm.access import Principal
from crmsync.crm.errors import NotFound
from crmsync.crm.models.activities import Activity, Appointment, Email, Task
from crmsync.crm.models.org import User
from crmsync.crm.models.records import Account, Case, Contact, CustomerRecord, Lead, Opportunity
from crmsync.crm.records import RECORD_MODELS, get_record, list_records
from crmsync.crm.timeline import TimelineItem, timeline
from crmsync.crm.types import (
    CUSTOMER_RECORD_TYPES,
    ActivityState,
    Direction,
    EmailStatus,
    Participation,
    Priority,
    RecordState,
    RecordType,
)
from crmsync.web.deps import CurrentViewer
from crmsync.web.templating import RECORD_PAGES, email_url, format_date, record_url, render

router = APIRouter(include_in_schema=False)

TIMELINE_PAGE = 20
RELATED_LIMIT = 25
PREVIEW_CHARS = 180
Cursor = Annotated[str | None, Query(max_length=200)]

TYPE_LABELS: dict[RecordType, str] = {
    RecordType.ACCOUNT: "Account",
    RecordType.CONTACT: "Contact",
    RecordType.LEAD: "Lead",
    RecordType.OPPORTUNITY: "Opportunity",
    RecordType.CASE: "Case",
    RecordType.EMAIL: "Email",
    RecordType.APPOINTMENT: "Appointment",
    RecordType.TASK: "Task",
}
# An email's status is worth a badge only when it is not the usual sent or received.
STATUS_BADGES: dict[EmailStatus, str] = {
    EmailStatus.DRAFT: "Draft",
    EmailStatus.PENDING_SEND: "Waiting to send",
    EmailStatus.SENDING: "Sending",
    EmailStatus.FAILED: "Not sent",
    EmailStatus.CANCELED: "Canceled",
}
DIRECTIONS = {Direction.OUTGOING: "Sent", Direction.INCOMING: "Received"}


@dataclass(frozen=True)
class Link:
    """A record the viewer may open: ``Link('Contact', 'Nancy Buyer', '/contacts/…')``."""

    label: str
    name: str
    url: str
    detail: str = ""


@dataclass(frozen=True)
class Detail:
    """One line of a record's details; ``url`` is a page of this site, mailto: or tel:."""

    label: str
    text: str
    url: str | None = None


@dataclass(frozen=True)
class Related:
    """Records that belong to this one: an account's contacts, a contact's account …"""

    title: str
    record_type: RecordType
    links: list[Link]
    more: bool = False  # there are more than the page shows


@dataclass(frozen=True)
class Entry:
    """One activity on a timeline, as the page shows it."""

    kind: str  # "email", "appointment", "task": the icon and the label
    label: str
    subject: str
    when: datetime
    url: str | None  # the email page; appointments and tasks have none yet
    people: str = ""  # "From Nancy Buyer" / "To Nancy Buyer and 2 more"
    direction: str = ""  # "Received" / "Sent"
    badges: list[str] = field(default_factory=list)
    preview: str = ""
    via: Link | None = None
    regarding: Link | None = None


def record_title(record: CustomerRecord) -> str:
    """What a record is called on a page: a name, a lead's person or topic, a case title."""
    if isinstance(record, Account | Opportunity):
        return record.name or "(no name)"
    if isinstance(record, Contact):
        return record.full_name or "(no name)"
    if isinstance(record, Lead):
        person = f"{record.first_name} {record.last_name}".strip()
        return person or record.subject or "(no name)"
    if isinstance(record, Case):
        return record.title or "(no title)"
    return str(record.id)


def _readable(
    session: Session, principal: Principal, record_type: RecordType, record_id: uuid.UUID | None
) -> CustomerRecord | None:
    """The record if the viewer may read it, else None: a link they could not open is
    no link, and its name is not shown either."""
    if record_id is None or record_type not in RECORD_MODELS:
        return None
    try:
        return get_record(session, principal, RECORD_MODELS[record_type], record_id)
    except NotFound:
        return None


def _link(record: CustomerRecord, detail: str = "") -> Link:
    return Link(
        TYPE_LABELS[record.record_type],
        record_title(record),
        record_url(record.record_type, record.id),
        detail,
    )


def _reference(
    session: Session,
    principal: Principal,
    label: str,
    record_type: RecordType,
    record_id: uuid.UUID | None,
) -> list[Detail]:
    record = _readable(session, principal, record_type, record_id)
    if record is None:
        return []
    return [Detail(label, record_title(record), record_url(record.record_type, record.id))]


def _text(label: str, value: object, url: str | None = None) -> list[Detail]:
    return [Detail(label, str(value), url)] if value not in (None, "") else []


def _emails(*addresses: str | None) -> list[Detail]:
    found = [address for address in addresses if address]
    return [
        Detail("Email" if index == 0 else "Other email", address, f"mailto:{address}")
        for index, address in enumerate(found)
    ]


def _phone(value: str | None) -> list[Detail]:
    return _text("Phone", value, f"tel:{value.replace(' ', '')}" if value else None)


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _own_details(session: Session, principal: Principal, record: CustomerRecord) -> list[Detail]:
    """The fields of each record type worth reading, in the order a person reads them."""
    if isinstance(record, Account):
        return [
            *_emails(record.email1),
            *_phone(record.phone),
            # Shown as text, never a link: a page of ours points at no other host.
            *_text("Website", record.website),
            *_reference(
                session, principal, "Parent account", RecordType.ACCOUNT, record.parent_account_id
            ),
        ]
    if isinstance(record, Contact):
        return [
            *_text("Job title", record.job_title),
            *_reference(session, principal, "Account", RecordType.ACCOUNT, record.account_id),
            *_emails(record.email1, record.email2, record.email3),
            *_phone(record.phone),
        ]
    if isinstance(record, Lead):
        return [
            *_text("Topic", record.subject),
            *_text("Company", record.company_name),
            *_emails(record.email1),
            *_phone(record.phone),
        ]
    if isinstance(record, Opportunity):
        return [
            *_reference(session, principal, "Account", RecordType.ACCOUNT, record.account_id),
            *_reference(session, principal, "Contact", RecordType.CONTACT, record.contact_id),
            *_text("Estimated value", _money(record.estimated_value)),
            *_text("Estimated close", format_date(record.estimated_close)),
        ]
    if isinstance(record, Case):
        return [
            *_text("Ticket", record.ticket_number),
            *_text("Priority", record.priority.value.title()),
            *_reference(session, principal, "Account", RecordType.ACCOUNT, record.account_id),
            *_reference(session, principal, "Contact", RecordType.CONTACT, record.contact_id),
        ]
    return []


def _owner_name(session: Session, principal: Principal, owner_id: uuid.UUID) -> str:
    # Users are known to everyone in the organisation (the directory), like the API's.
    try:
        owner = directory.get_in_org(session, principal, User, owner_id)
    except NotFound:
        return ""
    return owner.full_name or owner.username


def _subtitle(record: CustomerRecord) -> str:
    if isinstance(record, Contact):
        return record.job_title or ""
    if isinstance(record, Lead):
        return record.company_name or ""
    if isinstance(record, Case):
        return record.ticket_number or ""
    return ""


def _related_list(
    session: Session,
    principal: Principal,
    title: str,
    model: type[CustomerRecord],
    filters: dict[str, uuid.UUID],
    detail: Callable[[Any], str] = lambda _record: "",
) -> Related:
    page = list_records(session, principal, model, limit=RELATED_LIMIT, filters=filters)
    links = [_link(record, detail(record)) for record in page.items]
    return Related(title, model.record_type, links, more=page.next_cursor is not None)


def _contact_detail(contact: Contact) -> str:
    return contact.job_title or contact.email1 or ""


def _opportunity_detail(deal: Opportunity) -> str:
    return _money(deal.estimated_value)


def _case_detail(case: Case) -> str:
    return case.ticket_number or ""


def _related(session: Session, principal: Principal, record: CustomerRecord) -> list[Related]:
    """What belongs to the record, each list only what the viewer may read."""
    if isinstance(record, Account):
        mine = {"account_id": record.id}
        return [
            _related_list(session, principal, "Contacts", Contact, mine, _contact_detail),
            _related_list(
                session, principal, "Opportunities", Opportunity, mine, _opportunity_detail
            ),
            _related_list(session, principal, "Cases", Case, mine, _case_detail),
        ]
    if isinstance(record, Contact):
        mine = {"contact_id": record.id}
        return [
            _related_list(
                session, principal, "Opportunities", Opportunity, mine, _opportunity_detail
            ),
            _related_list(session, principal, "Cases", Case, mine, _case_detail),
        ]
    return []


# ---- the timeline ----------------------------------------------------------------------


def _names(activity: Activity, participation: tuple[Participation, ...]) -> list[str]:
    return [
        party.display_name or party.address or ""
        for party in activity.parties
        if party.participation in participation and (party.display_name or party.address)
    ]


def _people(prefix: str, names: list[str]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{prefix} {names[0]}"
    return f"{prefix} {names[0]} and {len(names) - 1} more"


def _preview(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1].rstrip() + "…"


def _email_entry(email: Email) -> Entry:
    outgoing = email.direction is Direction.OUTGOING
    badges = [STATUS_BADGES[email.status]] if email.status in STATUS_BADGES else []
    if outgoing:
        people = _people("To", _names(email, (Participation.TO, Participation.CC)))
    else:
        people = _people("From", _names(email, (Participation.FROM,)))
    direction = DIRECTIONS.get(email.direction, "") if email.direction is not None else ""
    return Entry(
        kind="email",
        label="Email",
        subject=email.subject,
        when=email.occurred_at,
        url=email_url(email.id),
        people=people,
        direction=direction,
        badges=badges,
        preview=_preview(email.body_text or ""),
    )


def _activity_entry(activity: Activity) -> Entry:
    if isinstance(activity, Email):
        return _email_entry(activity)
    badges: list[str] = []
    people = ""
    if activity.state is ActivityState.COMPLETED:
        badges.append("Completed")
    elif activity.state is ActivityState.CANCELED:
        badges.append("Canceled")
    if isinstance(activity, Appointment):
        if activity.location:
            people = f"At {activity.location}"
        organizer = _names(activity, (Participation.ORGANIZER,))
        people = people or _people("Organised by", organizer)
        kind, label = "appointment", "Appointment"
    else:
        if isinstance(activity, Task) and activity.priority is Priority.HIGH:
            badges.append("High priority")
        kind, label = "task", "Task"
    return Entry(
        kind=kind,
        label=label,
        subject=activity.subject,
        when=activity.occurred_at,
        url=None,
        people=people,
        badges=badges,
    )


def _entries(
    session: Session,
    principal: Principal,
    record: CustomerRecord,
    items: list[TimelineItem],
) -> list[Entry]:
    """The timeline's items as the page shows them, each with its "via" and regarding."""
    found: dict[tuple[RecordType, uuid.UUID], Link | None] = {}

    def regarding(activity: Activity) -> Link | None:
        kind, record_id = activity.regarding_type, activity.regarding_id
        if kind is None or record_id is None or record_id == record.id:
            return None  # none, or the page's own record
        if (kind, record_id) not in found:  # each regarding record read (and checked) once
            target = _readable(session, principal, kind, record_id)
            found[kind, record_id] = None if target is None else _link(target)
        return found[kind, record_id]

    entries = []
    for item in items:
        entry = _activity_entry(item.activity)
        via = None
        if item.via is not None:
            via = Link(
                TYPE_LABELS.get(item.via.record_type, item.via.record_type.value.title()),
                item.via.name or "(no name)",
                record_url(item.via.record_type, item.via.record_id),
            )
        target = regarding(item.activity)
        if via is not None and target is not None and target.url == via.url:
            target = None  # "via Nancy Buyer, regarding Nancy Buyer" says one thing twice
        entries.append(replace(entry, via=via, regarding=target))
    return entries


def _timeline_context(
    session: Session, principal: Principal, record: CustomerRecord, cursor: str | None
) -> dict[str, Any]:
    page = timeline(
        session, principal, record.record_type, record.id, cursor=cursor, limit=TIMELINE_PAGE
    )
    own = record_url(record.record_type, record.id)
    older = None
    if page.next_cursor is not None:
        query = urlencode({"cursor": page.next_cursor})
        older = {"href": f"{own}?{query}#timeline", "hx": f"{own}/timeline?{query}"}
    return {
        "entries": _entries(session, principal, record, page.items),
        "older": older,
        "cursor": cursor,
        "record_page": own,
    }


# ---- routes ----------------------------------------------------------------------------


def _record(
    session: Session, principal: Principal, record_type: RecordType, record_id: uuid.UUID
) -> CustomerRecord:
    return get_record(session, principal, RECORD_MODELS[record_type], record_id)


def record_page(
    request: Request,
    viewer: CurrentViewer,
    session: Session,
    record_type: RecordType,
    record_id: uuid.UUID,
    cursor: str | None,
) -> Response:
    principal = viewer.principal
    record = _record(session, principal, record_type, record_id)
    context = {
        "record": record,
        "record_type": record_type.value,
        "type_label": TYPE_LABELS[record_type],
        "title": record_title(record),
        "subtitle": _subtitle(record),
        "inactive": record.state is RecordState.INACTIVE,
        "details": _own_details(session, principal, record),
        "owner": _owner_name(session, principal, record.owner_id),
        "related": _related(session, principal, record),
        **_timeline_context(session, principal, record, cursor),
    }
    return render(request, "records/record.html", context)


def timeline_fragment(
    request: Request,
    viewer: CurrentViewer,
    session: Session,
    record_type: RecordType,
    record_id: uuid.UUID,
    cursor: str | None,
) -> Response:
    own = record_url(record_type, record_id)
    if not request.headers.get("HX-Request"):
        # The "Older" link without htmx: the record page at that point of the timeline.
        target = f"{own}?{urlencode({'cursor': cursor})}#timeline" if cursor else own
        return RedirectResponse(target, status_code=303)
    record = _record(session, viewer.principal, record_type, record_id)
    context = _timeline_context(session, viewer.principal, record, cursor)
    return render(request, "partials/timeline_items.html", context)


def _add_routes(record_type: RecordType) -> None:
    base = f"/{RECORD_PAGES[record_type]}/{{record_id:uuid}}"

    def page(
        request: Request,
        viewer: CurrentViewer,
        session: SessionDep,
        record_id: uuid.UUID,
        cursor: Cursor = None,
    ) -> Response:
        return record_page(request, viewer, session, record_type, record_id, cursor)

    def fragment(
        request: Request,
        viewer: CurrentViewer,
        session: SessionDep,
        record_id: uuid.UUID,
        cursor: Cursor = None,
    ) -> Response:
        return timeline_fragment(request, viewer, session, record_type, record_id, cursor)

    router.add_api_route(base, page, methods=["GET"], name=f"{record_type.value}_page")
    router.add_api_route(
        f"{base}/timeline", fragment, methods=["GET"], name=f"{record_type.value}_timeline"
    )


for _record_type in CUSTOMER_RECORD_TYPES:
    _add_routes(_record_type)
