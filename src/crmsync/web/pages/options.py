"""A person's own settings: tracking options, and their API and side panel tokens."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
