"""A record's timeline: every activity regarding it or having it as a party, newest first —
rolled up from the records that belong to it.

    account      its own, and those of its contacts (Contact.account_id), its
                 opportunities and its cases (account_id)
    contact      its own, and those of its opportunities and cases (contact_id)
    lead, opportunity, case
                 its own

An activity "of" a record regards it, or has it as a party (parties name users, queues,
contacts, accounts and leads only, so a party links through a contact or the record
itself). Each entry says through which record it came (``Via``: "via Contact Nancy
Buyer"), or None when it is the record's own; an activity that matches several ways
appears once, through the closest way: its own first, then contacts, opportunities,
cases, then by name.

One SQL query per page: the links (one SELECT per way, UNION ALL) are ranked per activity
with a window function, so paging stays a keyset on (occurred_at, id) and nothing is
loaded to be thrown away. Both SQLite (3.25+) and PostgreSQL run it.

Rights: the record itself must be readable (NotFound otherwise); activities are filtered
by crmsync.crm.access.visible, and so are the records rolled up — an activity the caller
may not read never appears, not even as a gap in a page, and a contact, opportunity or case
the caller may not read contributes nothing, so its name is never shown as a "via".
Must never return a row that was not filtered in SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from crmsync.core.types import RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.activities import any_activity
from crmsync.crm.models.activities import Activity, ActivityParty
from crmsync.crm.models.records import Case, Contact, CustomerRecord, Opportunity
from crmsync.crm.pagination import MAX_PAGE, Page, decode_cursor, encode_cursor
from crmsync.crm.records import RECORD_MODELS, contact_name, get_record


@dataclass(frozen=True)
class Via:
    """The record an activity reached the timeline through: ``(contact, id, 'Nancy Buyer')``."""

    record_type: RecordType
    record_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class TimelineItem:
    activity: Activity
    via: Via | None  # None: the activity is the record's own


@dataclass(frozen=True)
class _Related:
    """One kind of record rolled up into another's timeline."""

    model: type[CustomerRecord]
    link_column: str  # the column on ``model`` naming the timeline's record
    name: SQLColumnExpression[str]
    rank: int


def _related(record_type: RecordType) -> list[_Related]:
    if record_type is RecordType.ACCOUNT:
        return [
            _Related(Contact, "account_id", contact_name(), 1),
            _Related(Opportunity, "account_id", Opportunity.name, 2),
            _Related(Case, "account_id", Case.title, 3),
        ]
    if record_type is RecordType.CONTACT:
        return [
            _Related(Opportunity, "contact_id", Opportunity.name, 2),
            _Related(Case, "contact_id", Case.title, 3),
        ]
    return []


def _int(value: int) -> ColumnElement[int]:
    # Typed literals: PostgreSQL must know a UNION column's type from its first SELECT.
    return cast(literal(value), Integer)


def _text(value: str) -> ColumnElement[str]:
    return cast(literal(value), String(400))


def _links(
    principal: Principal, record_type: RecordType, record_id: uuid.UUID
) -> list[Select[*tuple[Any, ...]]]:
    """(activity_id, rank, via_type, via_id, via_name) for every way an activity is in."""
    own_regarding = select(
        Activity.id.label("activity_id"),
        _int(0).label("rank"),
        Activity.regarding_type.label("via_type"),
        Activity.regarding_id.label("via_id"),
        _text("").label("via_name"),
    ).where(Activity.regarding_type == record_type, Activity.regarding_id == record_id)
    own_party = select(
        ActivityParty.activity_id,
        _int(0),
        ActivityParty.party_type,
        ActivityParty.party_id,
        _text(""),
    ).where(ActivityParty.party_type == record_type, ActivityParty.party_id == record_id)
    links: list[Select[*tuple[Any, ...]]] = [own_regarding, own_party]
    for related in _related(record_type):
        model = related.model
        belongs = and_(
            getattr(model, related.link_column) == record_id,
            access.visible(model, principal),
        )
        links.append(
            select(Activity.id, _int(related.rank), Activity.regarding_type, model.id, related.name)
            .join(
                model,
                and_(
                    Activity.regarding_type == model.record_type, Activity.regarding_id == model.id
                ),
            )
            .where(belongs)
        )
        if model is Contact:  # of the rolled-up types, only contacts can be parties
            links.append(
                select(
                    ActivityParty.activity_id,
                    _int(related.rank),
                    ActivityParty.party_type,
                    model.id,
                    related.name,
                )
                .join(
                    model,
                    and_(
                        ActivityParty.party_type == model.record_type,
                        ActivityParty.party_id == model.id,
                    ),
                )
                .where(belongs)
            )
    return links


def timeline(
    session: Session,
    principal: Principal,
    record_type: RecordType,
    record_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[TimelineItem]:
    """One page of the record's timeline, newest first; NotFound if it cannot be read.

    ``timeline(session, me, RecordType.ACCOUNT, contoso_id).items`` →
    ``[TimelineItem(<Email 'Re: quote'>, Via(CONTACT, nancy_id, 'Nancy Buyer')), ...]``
    """
    get_record(session, principal, RECORD_MODELS[record_type], record_id)
    links = union_all(*_links(principal, record_type, record_id)).subquery("links")
    ranked = select(
        links.c.activity_id,
        links.c.rank,
        links.c.via_type,
        links.c.via_id,
        links.c.via_name,
        func.row_number()
        .over(
            partition_by=links.c.activity_id,
            order_by=(links.c.rank, links.c.via_name, links.c.via_id),
        )
        .label("nth"),
    ).subquery("ranked")
    entity = any_activity()
    query = (
        select(entity, ranked.c.rank, ranked.c.via_type, ranked.c.via_id, ranked.c.via_name)
        .join(ranked, ranked.c.activity_id == entity.id)
        .where(ranked.c.nth == 1, access.visible(entity, principal))
    )
    limit = max(1, min(limit, MAX_PAGE))
    if cursor:
        moment, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                entity.occurred_at < moment,
                and_(entity.occurred_at == moment, entity.id < last_id),
            )
        )
    rows = session.execute(
        query.order_by(entity.occurred_at.desc(), entity.id.desc()).limit(limit + 1)
    ).all()
    items = [
        TimelineItem(
            activity=row[0],
            via=None if row.rank == 0 else Via(row.via_type, row.via_id, row.via_name or ""),
        )
        for row in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1].activity
        next_cursor = encode_cursor(last.occurred_at, last.id)
    return Page(items=items, next_cursor=next_cursor)
