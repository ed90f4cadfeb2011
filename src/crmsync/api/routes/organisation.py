"""The organisation's settings, for its administrators (crm/organisation.py).

    GET   /api/v1/organisation/settings    every setting, and an example tracking token
    PATCH /api/v1/organisation/settings    changes the fields given; the others keep
                                           their value; answers the settings as stored

Reading needs the read privilege on the organisation at organisation depth, changing it
the write privilege (System Administrator); anyone else gets 403. The sync engines apply
a change from their next pass.
"""

from __future__ import annotations

from fastapi import APIRouter

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.api.schemas.organisation import (
    OrganisationSettingsPublic,
    OrganisationSettingsUpdate,
)
from crmsync.crm import organisation

router = APIRouter(tags=["organisation"])


@router.get(
    "/organisation/settings",
    response_model=OrganisationSettingsPublic,
    name="organisation_settings",
)
def organisation_settings(
    session: SessionDep, principal: CurrentPrincipal
) -> OrganisationSettingsPublic:
    return OrganisationSettingsPublic.of(organisation.get_settings(session, principal))


@router.patch(
    "/organisation/settings",
    response_model=OrganisationSettingsPublic,
    name="update_organisation_settings",
)
def update_organisation_settings(
    body: OrganisationSettingsUpdate, session: SessionDep, principal: CurrentPrincipal
) -> OrganisationSettingsPublic:
    changes = body.model_dump(mode="json", exclude_unset=True)
    return OrganisationSettingsPublic.of(organisation.update_settings(session, principal, changes))
