"""The side panel beside an email in a mail client, and its connect flow."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
