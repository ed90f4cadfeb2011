"""Shapes shared by every resource: addresses, pages, ownership metadata."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, create_model

from crmsync.crm.addresses import normalise_address

T = TypeVar("T")


def _check_address(value: str) -> str:
    value = value.strip()
    if normalise_address(value) is None:
        raise ValueError("not an email address")
    return value


# Deliberately looser than RFC 5322 validators: a CRM must accept the addresses customers
# really use (test domains, IDNs, odd local parts) and only refuse what cannot be one.
EmailAddress = Annotated[str, Field(max_length=320), AfterValidator(_check_address)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class OwnedPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    owning_business_unit_id: uuid.UUID
    created_at: AwareDatetime
    modified_at: AwareDatetime


class AssignRequest(BaseModel):
    owner_id: uuid.UUID


class ShareRequest(BaseModel):
    team_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    can_write: bool = False


def partial(model: type[BaseModel], name: str) -> type[BaseModel]:
    """An Update schema: every field of ``model`` may be left out; only sent fields apply.

    Types and constraints stay as they are, so an explicit ``null`` for a required field
    is still a 422, not a database error.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[field_name] = (annotation, Field(default=None, description=info.description))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
