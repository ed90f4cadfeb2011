"""Alerts and the triage queue of item failures, for administrators."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
