"""Cursor (keyset) pagination, newest first.

A cursor is an opaque string encoding the (sort time, id) of the last row a client saw;
the next page is the rows strictly after it in (time desc, id desc) order. Unlike
offsets, cursors stay correct while rows are being added, which a mailbox being synced
does all the time.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from crmsync.crm.errors import CrmError

T = TypeVar("T")
MAX_PAGE = 200


class InvalidCursor(CrmError):
    code = "INVALID_CURSOR"
    status = 422


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(moment: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([moment.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (time, id) a cursor holds; InvalidCursor for anything this server did not issue.

    A cursor comes from the client, so every part is checked: the JSON shape, both types,
    an aware time that stays in range once converted to UTC (``0001-01-01T00:00+23:59``
    would not), and a well-formed id.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded))
        if not (
            isinstance(decoded, list)
            and len(decoded) == 2
            and all(isinstance(part, str) for part in decoded)
        ):
            raise ValueError("not a [time, id] pair of strings")
        moment, row_id = decoded
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError, binascii.Error) as exc:
        raise InvalidCursor("The cursor is not one this server issued", field="cursor") from exc


def paginate(
    session: Session,
    query: Select[Any],
    time_column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[Any],
    *,
    cursor: str | None,
    limit: int,
) -> Page[T]:
    limit = max(1, min(limit, MAX_PAGE))
    if cursor:
        moment, row_id = decode_cursor(cursor)
        query = query.where(
            or_(time_column < moment, and_(time_column == moment, id_column < row_id))
        )
    rows: list[T] = list(
        session.scalars(query.order_by(time_column.desc(), id_column.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
    return Page(items=rows, next_cursor=next_cursor)
