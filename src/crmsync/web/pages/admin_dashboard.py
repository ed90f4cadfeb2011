"""The performance dashboard for administrators: charts of what the sync engine did."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
