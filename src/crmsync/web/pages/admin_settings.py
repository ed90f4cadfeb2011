"""The administrators' home (/admin) and the organisation's settings."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
