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
from crmsync.crm.errors import AuthenticationFailed, RuleViolation
from crmsync.crm.models.org import ApiToken, Organisation, User
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


def find_login_organisation(session: Session, organisation: str | None) -> Organisation | None:
    """The organisation a login names, or the instance's only one when it names none.

    Raises a rule violation when several organisations exist and none is named: usernames
    are unique per organisation only. None when the name matches no organisation (the
    caller then fails the login as for a wrong password).
    """
    if organisation:
        return session.scalar(select(Organisation).where(Organisation.name == organisation))
    found = session.scalars(select(Organisation).limit(2)).all()
    if len(found) > 1:
        raise RuleViolation(
            "ORGANISATION_REQUIRED",
            "This instance serves several organisations: name yours",
            field="organisation",
        )
    return found[0] if found else None


def authenticate_password(
    session: Session, username: str, password: str, organisation: str | None = None
) -> User:
    """The active user with this username and password, or AuthenticationFailed.

    Every failure costs one argon2 verification — unknown organisation, unknown user, a
    user without a password, an inactive user, a wrong password — so the time taken does
    not tell which usernames exist.
    """
    org = find_login_organisation(session, organisation)
    user = None
    if org is not None:
        user = session.scalar(
            select(User).where(User.organisation_id == org.id, User.username == username)
        )
    stored = user.password_hash if user is not None else None
    matches = verify_password(stored or _dummy_hash(), password) and stored is not None
    if not matches or user is None or not user.is_active:
        raise AuthenticationFailed("Wrong username or password")
    return user


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))
