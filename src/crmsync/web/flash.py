"""Flash messages: one-time notes ("You have logged out") shown on the next page rendered.

A form that POSTs answers with a redirect (303) and leaves its message in a cookie::

    response = RedirectResponse("/", status_code=303)
    flash.add(request, response, "Email tracked", level="success")

``render`` (templating.py) shows the messages of the request's cookie and clears it. The
cookie is signed (HMAC with the application's CSRF key material, separated by a label),
so a cookie planted by a neighbouring site cannot put words into our pages; messages are
escaped like any other text when shown.

Must never carry a secret or personal data beyond what the next page shows anyway: the
cookie is readable by whoever holds the browser.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response

from crmsync.api.csrf import CsrfTokens

COOKIE = "crmsync_flash"
LEVELS = ("info", "success", "warning", "error")
Level = Literal["info", "success", "warning", "error"]
_LABEL = "flash\0"  # session tokens start with crms_, so no flash signs as a CSRF token
_MAX_MESSAGES = 5
_MAX_TEXT = 300


@dataclass(frozen=True)
class Flash:
    level: str
    text: str


def _signer(request: Request) -> CsrfTokens:
    tokens: CsrfTokens = request.app.state.csrf
    return tokens


def _encode(request: Request, messages: list[Flash]) -> str:
    payload = json.dumps([[m.level, m.text] for m in messages], separators=(",", ":"))
    data = base64.urlsafe_b64encode(payload.encode("utf-8")).rstrip(b"=").decode("ascii")
    return f"{data}.{_signer(request).issue(_LABEL + data)}"


def _decode(request: Request, value: str) -> list[Flash]:
    data, _, signature = value.partition(".")
    if not data or not signature or not _signer(request).verify(_LABEL + data, signature):
        return []
    try:
        raw = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (ValueError, binascii.Error):
        return []
    if not isinstance(raw, list):
        return []
    return [
        Flash(level, text)
        for level, text in (item for item in raw if isinstance(item, list) and len(item) == 2)
        if level in LEVELS and isinstance(text, str)
    ][:_MAX_MESSAGES]


def add(request: Request, response: Response, text: str, level: Level = "info") -> None:
    """Show ``text`` on the next page this browser gets rendered."""
    pending: list[Flash] = getattr(request.state, "flash_pending", [])
    pending = [*pending, Flash(level, text[:_MAX_TEXT])][-_MAX_MESSAGES:]
    request.state.flash_pending = pending
    response.set_cookie(
        COOKIE,
        _encode(request, pending),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def take(request: Request) -> list[Flash]:
    """The messages waiting for this request's page (the caller clears the cookie)."""
    value = request.cookies.get(COOKIE)
    return _decode(request, value) if value else []


def clear(response: Response) -> None:
    response.delete_cookie(COOKIE)
