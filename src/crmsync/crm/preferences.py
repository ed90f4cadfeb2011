"""Personal options: a user's — or a queue's — ``TrackingPreferences``, read and written.

The incoming engine reads the same JSON (crmsync.sync.context: the mailbox's user's
``settings``, or its queue's), so what is saved here is what the next sync pass does.
Writing changes only the fields given: the others, and keys this version does not know
(written by a newer one), are kept.

Who: every user their own. A queue's, its owner, or whoever's write privilege on queues
reaches it (crmsync.crm.access.covers_entry: business-unit or organisation depth);
reading needs the same with the read privilege. A queue of another organisation is not
found; one of the caller's own that they may not touch is Forbidden (queues, like the
rest of the directory, are known to everyone in the organisation).

Must never store what ``TrackingPreferences`` refuses: a bad value is an
``InvalidPreference`` naming the field, and nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from crmsync.core.types import Privilege
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.errors import CrmError, Forbidden, NotFound
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Queue, User
from crmsync.crm.settings import TrackingPreferences, first_error, read_stored


class InvalidPreference(CrmError):
    """A preference value ``TrackingPreferences`` refuses; ``field`` names it."""

    code = "VALIDATION_FAILED"
    status = 422


def _read(stored: Mapping[str, Any] | None) -> TrackingPreferences:
    return read_stored(TrackingPreferences, stored)


def mailbox_preferences(session: Session, mailbox: Mailbox) -> TrackingPreferences:
    """The preferences the incoming engine applies to ``mailbox``: its user's or queue's."""
    owner: User | Queue | None = None
    if mailbox.user_id is not None:
        owner = session.get(User, mailbox.user_id)
    elif mailbox.queue_id is not None:
        owner = session.get(Queue, mailbox.queue_id)
    return _read(owner.settings if owner is not None else None)


def _write(owner: User | Queue, changes: Mapping[str, Any]) -> TrackingPreferences:
    known = set(TrackingPreferences.model_fields)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidPreference(f"No such preference: {unknown[0]}", field=unknown[0])
    merged = {**_read(owner.settings).model_dump(mode="json"), **changes}
    try:
        preferences = TrackingPreferences.model_validate(merged)
    except ValidationError as exc:
        field, message = first_error(exc, "preferences")
        raise InvalidPreference(message, field=field) from exc
    # A new dict: the JSON column notices a replaced value, not one changed in place.
    owner.settings = preferences.model_dump(mode="json")
    return preferences


def _me(session: Session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    if user is None:  # the operator (crm.access.OPERATOR_ID) has no preferences
        raise NotFound("user", principal.user_id)
    return user


def my_preferences(session: Session, principal: Principal) -> TrackingPreferences:
    """The caller's own preferences (defaults for what was never set)."""
    return _read(_me(session, principal).settings)


def set_my_preferences(
    session: Session, principal: Principal, changes: Mapping[str, Any]
) -> TrackingPreferences:
    """Change some of the caller's preferences: ``{'track_scope': 'all'}``."""
    preferences = _write(_me(session, principal), changes)
    session.flush()
    return preferences


def _queue(
    session: Session, principal: Principal, queue_id: uuid.UUID, privilege: Privilege
) -> Queue:
    queue = session.get(Queue, queue_id)
    if queue is None or queue.organisation_id != principal.organisation_id:
        raise NotFound("queue", queue_id)
    if queue.owner_id != principal.user_id and not access.covers_entry(principal, privilege, queue):
        raise Forbidden(
            "Only the queue's owner, or whoever may change it, sees its tracking preferences",
            privilege=privilege.value,
        )
    return queue


def queue_preferences(
    session: Session, principal: Principal, queue_id: uuid.UUID
) -> TrackingPreferences:
    return _read(_queue(session, principal, queue_id, Privilege.READ).settings)


def set_queue_preferences(
    session: Session, principal: Principal, queue_id: uuid.UUID, changes: Mapping[str, Any]
) -> TrackingPreferences:
    preferences = _write(_queue(session, principal, queue_id, Privilege.WRITE), changes)
    session.flush()
    return preferences
