"""Passwords and API tokens.

Passwords are hashed with argon2id (argon2-cffi). API tokens are ``crms_`` plus 256 random
bits; only their SHA-256 is stored, with a short prefix so people can tell tokens apart.
A token is shown once, when created, and never again.

Must never log, store or return a password or a token in clear.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.crm.db import utcnow
from crmsync.crm.errors import AuthenticationFailed
from crmsync.crm.models.org import ApiToken, User
from crmsync.crm.types import TokenKind

TOKEN_PREFIX = "crms_"  # noqa: S105 - a public marker, not a secret
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    user: User,
    name: str,
    *,
    kind: TokenKind = TokenKind.API,
    lifetime: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the clear token (show it once)."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=digest_token(clear),
        prefix=clear[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + lifetime if lifetime else None,
    )
    session.add(row)
    session.flush()
    return row, clear


def authenticate_token(session: Session, token: str, now: datetime | None = None) -> User:
    """The active user a valid, unexpired, unrevoked token belongs to."""
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest_token(token)))
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationFailed("Invalid or expired token")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("Invalid or expired token")
    # Recording use at most once a minute keeps reads from turning into writes.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return user


def authenticate_password(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    # Hash even for unknown users so timing does not reveal which usernames exist.
    stored = user.password_hash if user is not None else _dummy_hash()
    if not verify_password(stored, password) or user is None or not user.is_active:
        raise AuthenticationFailed("Wrong username or password")
    return user


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))
