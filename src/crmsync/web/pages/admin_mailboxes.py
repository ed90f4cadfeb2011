"""Mailbox health for administrators: every mailbox's channels, Test & Enable from the
page, and the email server profile and mailbox forms."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
