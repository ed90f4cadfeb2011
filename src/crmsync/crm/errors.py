"""Errors raised by the record store, named by what the caller should do.

They carry fields, not sentences for people: api/ turns them into problem+json and the
CLI into messages. ``code`` is stable and part of the API contract.
"""

from __future__ import annotations

import uuid
from typing import Any


class CrmError(Exception):
    code = "CRM_ERROR"
    status = 400

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields


class NotFound(CrmError):
    """The record does not exist *or the caller may not read it*: the two look the same."""

    code = "NOT_FOUND"
    status = 404

    def __init__(self, record_type: str, record_id: uuid.UUID | str) -> None:
        super().__init__(f"No {record_type} {record_id}", record_type=record_type)


class Forbidden(CrmError):
    """The caller can see the record but lacks the privilege for this action."""

    code = "FORBIDDEN"
    status = 403


class Conflict(CrmError):
    code = "CONFLICT"
    status = 409


class InvalidReference(CrmError):
    """A field names a record that does not exist or cannot be used there."""

    code = "INVALID_REFERENCE"
    status = 422


class RuleViolation(CrmError):
    """A request that is well-formed but breaks a business rule; ``code`` names the rule."""

    status = 422

    def __init__(self, code: str, detail: str, **fields: Any) -> None:
        super().__init__(detail, **fields)
        self.code = code


class AuthenticationFailed(CrmError):
    code = "AUTHENTICATION_FAILED"
    status = 401
