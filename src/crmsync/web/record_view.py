"""How customer records and their timelines read on a page: names, type labels, links,
and timeline entries — shared by the record pages and the search results.

``timeline_context(session, principal, record, cursor)`` is one page of a record's
timeline (``crm/timeline.py``) as templates/partials/timeline*.html show it: each
activity an ``Entry`` with its icon kind, subject, when, who it is from or to, a preview,
"via" the record it came through and the record it regards, and the "Older" link.

Must never name or link a record the viewer may not read: a regarding record or a
reference is shown only when ``records.get_record`` lets the viewer read it, and a "via"
comes from the timeline service, which filters those records in SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from crmsync.core.types import (
    ActivityState,
    Direction,
    EmailStatus,
    Participation,
    Priority,
    RecordType,
)
from crmsync.crm.access import Principal
from crmsync.crm.errors import NotFound
from crmsync.crm.models.activities import Activity, Appointment, Email, Task
from crmsync.crm.models.records import Account, Case, Contact, CustomerRecord, Lead, Opportunity
from crmsync.crm.records import RECORD_MODELS, get_record
from crmsync.crm.timeline import TimelineItem, timeline
from crmsync.web.templating import email_url, record_url

TIMELINE_PAGE = 20
PREVIEW_CHARS = 180

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


def readable(
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


def record_link(record: CustomerRecord, detail: str = "") -> Link:
    return Link(
        TYPE_LABELS[record.record_type],
        record_title(record),
        record_url(record.record_type, record.id),
        detail,
    )


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


def entries(
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
            target = readable(session, principal, kind, record_id)
            found[kind, record_id] = None if target is None else record_link(target)
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


def timeline_context(
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
        "entries": entries(session, principal, record, page.items),
        "older": older,
        "cursor": cursor,
        "record_page": own,
    }
