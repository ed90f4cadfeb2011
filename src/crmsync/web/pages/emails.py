"""The email page: a tracked email, why it was tracked, and what a person does to it."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
