"""Where a request's credentials are: an ``Authorization: Bearer`` header or the cookie.

Only reads them; whether they are valid is for crm/auth.py, and whether a cookie may be
used for an unsafe request is for csrf.py. Must never log what it reads.
"""

from __future__ import annotations

from fastapi import Request

SESSION_COOKIE = "crmsync_session"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None
