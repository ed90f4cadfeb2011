"""Personal options: which incoming email to track, and what to do with unknown senders."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from crmsync.api.schemas.common import omittable
from crmsync.core.types import TrackingScope
from crmsync.crm.settings import TrackingPreferences, UnknownSenderRecord

_FIELDS = TrackingPreferences.model_fields


class TrackingPreferencesPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    track_scope: TrackingScope = Field(description=_FIELDS["track_scope"].description)
    create_for_unknown_sender: UnknownSenderRecord = Field(
        description=_FIELDS["create_for_unknown_sender"].description
    )
    leave_ambiguous_unresolved: bool = Field(
        description=_FIELDS["leave_ambiguous_unresolved"].description
    )


class TrackingPreferencesUpdate(BaseModel):
    """The preferences to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    track_scope: TrackingScope = omittable(description=_FIELDS["track_scope"].description)
    create_for_unknown_sender: UnknownSenderRecord = omittable(
        description=_FIELDS["create_for_unknown_sender"].description
    )
    # Strict: JSON's 0 or "true" is not a yes or no (pydantic's lax mode would take them).
    leave_ambiguous_unresolved: StrictBool = omittable(
        description=_FIELDS["leave_ambiguous_unresolved"].description
    )
