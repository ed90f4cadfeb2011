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

How records, links and timeline entries read is web/record_view.py's; this module gathers
a page. Everything shown is read through crm/ with the viewer's principal: the record
through ``records.get_record``, related records through ``records.list_records``, the
timeline through ``timeline.timeline`` (whose "via" names only records the viewer may
read), and a regarding record or a parent account only when ``get_record`` lets the
viewer read it.

Must never show a record, a name or a link the viewer could not open through the API,
and never render a description but through ``|safe_html``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from crmsync.api.deps import SessionDep
from crmsync.core.types import CUSTOMER_RECORD_TYPES, RecordState, RecordType
from crmsync.crm import directory
from crmsync.crm.access import Principal
from crmsync.crm.errors import NotFound
from crmsync.crm.models.org import User
from crmsync.crm.models.records import Account, Case, Contact, CustomerRecord, Lead, Opportunity
from crmsync.crm.records import RECORD_MODELS, get_record, list_records
from crmsync.web.deps import CurrentViewer
from crmsync.web.record_view import (
    TYPE_LABELS,
    Link,
    readable,
    record_link,
    record_title,
    timeline_context,
)
from crmsync.web.templating import RECORD_PAGES, format_date, record_url, render

router = APIRouter(include_in_schema=False)

RELATED_LIMIT = 25
Cursor = Annotated[str | None, Query(max_length=200)]


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


def _reference(
    session: Session,
    principal: Principal,
    label: str,
    record_type: RecordType,
    record_id: uuid.UUID | None,
) -> list[Detail]:
    record = readable(session, principal, record_type, record_id)
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
    links = [record_link(record, detail(record)) for record in page.items]
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
        **timeline_context(session, principal, record, cursor),
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
    context = timeline_context(session, viewer.principal, record, cursor)
    return render(request, "partials/timeline_items.html", context)


RecordHandler = Callable[
    [Request, CurrentViewer, Session, RecordType, uuid.UUID, str | None], Response
]


def _for_type(handler: RecordHandler, record_type: RecordType) -> Callable[..., Response]:
    """``handler`` as the route of one record type: the type is the path's, not a parameter."""

    def route(
        request: Request,
        viewer: CurrentViewer,
        session: SessionDep,
        record_id: uuid.UUID,
        cursor: Cursor = None,
    ) -> Response:
        return handler(request, viewer, session, record_type, record_id, cursor)

    return route


def _add_routes(record_type: RecordType) -> None:
    base = f"/{RECORD_PAGES[record_type]}/{{record_id:uuid}}"
    page = _for_type(record_page, record_type)
    fragment = _for_type(timeline_fragment, record_type)
    router.add_api_route(base, page, methods=["GET"], name=f"{record_type.value}_page")
    router.add_api_route(
        f"{base}/timeline", fragment, methods=["GET"], name=f"{record_type.value}_timeline"
    )


for _record_type in CUSTOMER_RECORD_TYPES:
    _add_routes(_record_type)
