"""Shapes shared by every resource: addresses, pages, ownership metadata."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)

from crmsync.core.addresses import normalise_address

T = TypeVar("T")


def _check_address(value: str) -> str:
    value = value.strip()
    if normalise_address(value) is None:
        raise ValueError("not an email address")
    return value


# Deliberately looser than RFC 5322 validators: a CRM must accept the addresses customers
# really use (test domains, IDNs, odd local parts) and only refuse what cannot be one. The
# pattern says in the OpenAPI document what the validator accepts — something@something,
# no white space in any regex dialect's sense, no angle brackets — so a client that
# follows the document is never refused.
ADDRESS_PATTERN = r"^[^\s\x1c-\x1f\x85@<>]+@[^\s\x1c-\x1f\x85@<>]+$"
EmailAddress = Annotated[
    str, Field(max_length=320, pattern=ADDRESS_PATTERN), AfterValidator(_check_address)
]


def _json_number(value: Any) -> Any:
    # Pydantic's lax int takes true (as 1) and "5"; JSON Schema's integer is a number with
    # no fraction (5 or 5.0) and nothing else, and the OpenAPI document promises the latter.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    return value


# An integer a client sends: 5 or 5.0, never true or "5". With bounds on an optional
# field, put them before the validator (``Annotated[int, Field(ge=1), AS_WHOLE_NUMBER]``):
# after it, pydantic can no longer apply them to the integer and writes ``ge``/``le`` into
# the OpenAPI document, which no client understands.
AS_WHOLE_NUMBER = BeforeValidator(_json_number)
WholeNumber = Annotated[int, AS_WHOLE_NUMBER]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        # 0001-01-01T00:00+23:59 is a valid ISO time whose UTC instant is before year 1.
        raise ValueError("the time is out of range once converted to UTC") from exc


# Every time a client sends: with an offset, and representable in UTC (stored as UTC).
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**constraints: Any) -> Any:
    """A field of an update that may be left out but, when sent, must not be null.

    Typed ``Any`` so a non-optional annotation (``enabled: bool = omittable()``) passes
    mypy while pydantic still refuses an explicit ``null`` with a 422 naming the field;
    routes read only the fields that were sent (``model_dump(exclude_unset=True)``). The
    ``null`` default is kept out of the OpenAPI document, which would contradict the type.
    """
    return Field(default=None, json_schema_extra=_drop_default, **constraints)


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
        fields[field_name] = (annotation, omittable(description=info.description))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
