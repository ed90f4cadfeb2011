"""Personal options: your own tracking preferences, and a queue's (crm/preferences.py).

    GET/PUT /api/v1/users/me/tracking-preferences
    GET/PUT /api/v1/queues/{queue_id}/tracking-preferences    the queue's owner, or whoever
                                                              may change the queue

PUT changes the fields it is given; the others keep their value. The incoming engine
applies them from its next pass.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.api.schemas.preferences import TrackingPreferencesPublic, TrackingPreferencesUpdate
from crmsync.crm import preferences
from crmsync.crm.settings import TrackingPreferences

router = APIRouter(tags=["preferences"])


@router.get(
    "/users/me/tracking-preferences",
    response_model=TrackingPreferencesPublic,
    name="my_tracking_preferences",
)
def my_tracking_preferences(
    session: SessionDep, principal: CurrentPrincipal
) -> TrackingPreferences:
    return preferences.my_preferences(session, principal)


@router.put(
    "/users/me/tracking-preferences",
    response_model=TrackingPreferencesPublic,
    name="set_my_tracking_preferences",
)
def set_my_tracking_preferences(
    body: TrackingPreferencesUpdate, session: SessionDep, principal: CurrentPrincipal
) -> TrackingPreferences:
    changes = body.model_dump(mode="json", exclude_unset=True)
    return preferences.set_my_preferences(session, principal, changes)


@router.get(
    "/queues/{queue_id}/tracking-preferences",
    response_model=TrackingPreferencesPublic,
    name="queue_tracking_preferences",
    tags=["queues"],
)
def queue_tracking_preferences(
    queue_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> TrackingPreferences:
    return preferences.queue_preferences(session, principal, queue_id)


@router.put(
    "/queues/{queue_id}/tracking-preferences",
    response_model=TrackingPreferencesPublic,
    name="set_queue_tracking_preferences",
    tags=["queues"],
)
def set_queue_tracking_preferences(
    queue_id: uuid.UUID,
    body: TrackingPreferencesUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> TrackingPreferences:
    changes = body.model_dump(mode="json", exclude_unset=True)
    return preferences.set_queue_preferences(session, principal, queue_id, changes)
