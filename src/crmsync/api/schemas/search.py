"""Search shapes: one hit per record, its type, title and a line that tells it apart."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.core.types import RecordType

SearchType = Literal["account", "contact", "lead", "opportunity", "case"]


class SearchHitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    record_type: RecordType
    record_id: uuid.UUID
    title: str = Field(description="The name: an account's, a contact's, a case's title…")
    subtitle: str = Field(
        description="What tells it apart: an address, the account (if you may read it), "
        "a ticket number; may be empty."
    )


class SearchResults(BaseModel):
    items: list[SearchHitPublic] = Field(
        description="Best first: exact matches, then prefixes, then the rest."
    )
