"""A record's timeline: every activity regarding it or having it as a party, newest first.

Filtered by crmsync.crm.access.visible, so an activity the caller may not read never
appears — not even as a gap in the count.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.activities import any_activity
from crmsync.crm.models.activities import Activity, ActivityParty
from crmsync.crm.pagination import Page, paginate
from crmsync.crm.records import RECORD_MODELS, get_record
from crmsync.crm.types import RecordType


def timeline(
    session: Session,
    principal: Principal,
    record_type: RecordType,
    record_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Activity]:
    get_record(session, principal, RECORD_MODELS[record_type], record_id)
    entity = any_activity()
    as_party = exists(
        select(ActivityParty.id).where(
            ActivityParty.activity_id == entity.id,
            ActivityParty.party_type == record_type,
            ActivityParty.party_id == record_id,
        )
    )
    query = select(entity).where(
        access.visible(entity, principal),
        or_(
            and_(entity.regarding_type == record_type, entity.regarding_id == record_id),
            as_party,
        ),
    )
    return paginate(session, query, entity.occurred_at, entity.id, cursor=cursor, limit=limit)
